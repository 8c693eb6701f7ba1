package ratelimit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/authly/authly/internal/ratelimit"
)

func TestParseLimit(t *testing.T) {
	t.Parallel()
	valid := []struct {
		in   string
		want ratelimit.Limit
	}{
		{"5/1m", ratelimit.Limit{N: 5, Period: time.Minute}},
		{"60/1m", ratelimit.Limit{N: 60, Period: time.Minute}},
		{"10/1h", ratelimit.Limit{N: 10, Period: time.Hour}},
		{"100/30s", ratelimit.Limit{N: 100, Period: 30 * time.Second}},
		{"3/1m30s", ratelimit.Limit{N: 3, Period: 90 * time.Second}},
		{" 5 / 1m ", ratelimit.Limit{N: 5, Period: time.Minute}},
		{"0", ratelimit.Limit{}},
		{"0/1m", ratelimit.Limit{}},
		{"1000000/1s", ratelimit.Limit{N: 1_000_000, Period: time.Second}},
	}
	for _, c := range valid {
		t.Run("accepts "+c.in, func(t *testing.T) {
			got, err := ratelimit.ParseLimit(c.in)
			if err != nil || got != c.want {
				t.Fatalf("ParseLimit(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			}
			if again, err := ratelimit.ParseLimit(got.String()); err != nil || again != got {
				t.Errorf("ParseLimit(%q.String() = %q) = %+v, %v", c.in, got.String(), again, err)
			}
		})
	}

	invalid := []struct{ in, mentions string }{
		{"", `"N/period"`},
		{"5", `"N/period"`},
		{"off", `"N/period"`},
		{"5/", "period"},
		{"/1m", "count"},
		{"-1/1m", "count"},
		{"1.5/1m", "count"},
		{"five/1m", "count"},
		{"5/1x", "period"},
		{"5/m", "period"},
		{"5/1m/2", "period"},
		{"5/0s", "not positive"},
		{"5/-1m", "not positive"},
		{"2000000/1s", "more than one a microsecond"},
		{"1/9000h", "longer than"},
	}
	for _, c := range invalid {
		t.Run("rejects "+c.in, func(t *testing.T) {
			got, err := ratelimit.ParseLimit(c.in)
			if err == nil {
				t.Fatalf("ParseLimit(%q) = %+v, want an error", c.in, got)
			}
			if !strings.Contains(err.Error(), c.mentions) || !strings.Contains(err.Error(), "ratelimit: limit") {
				t.Errorf("ParseLimit(%q) error %q does not mention %q", c.in, err, c.mentions)
			}
		})
	}
}

func TestLimitOffAndString(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		limit ratelimit.Limit
		off   bool
		text  string
	}{
		{ratelimit.Limit{}, true, "0"},
		{ratelimit.Limit{Period: time.Minute}, true, "0"},
		{ratelimit.Limit{N: 5, Period: time.Minute}, false, "5/1m"},
		{ratelimit.Limit{N: 10, Period: 2 * time.Hour}, false, "10/2h"},
		{ratelimit.Limit{N: 100, Period: 90 * time.Second}, false, "100/90s"},
		{ratelimit.Limit{N: 4, Period: 400 * time.Millisecond}, false, "4/400ms"},
	} {
		if got := c.limit.Off(); got != c.off {
			t.Errorf("%+v.Off() = %v, want %v", c.limit, got, c.off)
		}
		if got := c.limit.String(); got != c.text {
			t.Errorf("%+v.String() = %q, want %q", c.limit, got, c.text)
		}
	}
}
