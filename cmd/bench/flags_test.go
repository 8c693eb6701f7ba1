package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestJWTAlgorithmFlagIsCheckedBeforeAnythingStarts(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-jwt-algorithm", "HS256,none"}, `-jwt-algorithm: "none" is not one of`},
		{[]string{"-jwt-algorithm", "ES256", "-url", "http://127.0.0.1:8000"}, "cannot be used with -url"},
		{[]string{"-scenarios", "jwks,nope"}, `unknown scenario "nope"`},
	} {
		err := run(context.Background(), tc.args, getenv, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	if sc, ok := scenarioByName("jwks"); !ok || sc.needsLogin || sc.bcryptBound {
		t.Fatalf("the jwks scenario: %+v %v", sc, ok)
	}
	r := result{Scenario: "me", JWTAlgorithm: "ES256"}
	if r.label() != "me (ES256)" {
		t.Fatalf("label %q", r.label())
	}
}
