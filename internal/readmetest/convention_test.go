package readmetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// walkthroughHeading opens the README's section whose shell blocks the test runs; the section
// ends at the next second-level heading.
const walkthroughHeading = "## Using the API"

// block is one fenced sh block of the README.
type block struct {
	line  int // the README line of the block's first line, after the fence
	lines []string
}

// walkthroughBlocks returns the sh blocks of the walkthrough section of readme, in order.
func walkthroughBlocks(readme string) ([]block, error) {
	lines := strings.Split(readme, "\n")
	start := slices.Index(lines, walkthroughHeading)
	if start < 0 {
		return nil, fmt.Errorf("no %q heading", walkthroughHeading)
	}
	var blocks []block
	var open *block
	for i := start + 1; i < len(lines); i++ {
		line := lines[i]
		switch {
		case open == nil && strings.HasPrefix(line, "## "):
			return blocks, nil
		case open == nil && line == "```sh":
			open = &block{line: i + 2}
		case open != nil && line == "```":
			blocks = append(blocks, *open)
			open = nil
		case open != nil:
			open.lines = append(open.lines, line)
		}
	}
	if open != nil {
		return nil, fmt.Errorf("README.md:%d: the sh block is never closed", open.line-1)
	}
	return blocks, nil
}

// step is a stretch of a block: commands, and what the README says they print.
type step struct {
	first  int      // the README line of script[0]
	line   int      // the README line of its "# =>", or of its last line when it has none
	script []string // the commands, and the comments between them, as they are run
	want   string   // the expected output; "" when the commands must print nothing
}

const (
	expectPrefix       = "# =>"
	continuationPrefix = "#  "
)

// steps cuts b at its "# =>" lines. A stretch after the last of them, when b has one, is a
// step that must print nothing.
func steps(b block) []step {
	var out []step
	cur := step{first: b.line}
	for i := 0; i < len(b.lines); i++ {
		line := b.lines[i]
		if line != expectPrefix && !strings.HasPrefix(line, expectPrefix+" ") {
			cur.script = append(cur.script, line)
			continue
		}
		want := []string{strings.TrimSpace(strings.TrimPrefix(line, expectPrefix))}
		cur.line = b.line + i
		for i+1 < len(b.lines) && strings.HasPrefix(b.lines[i+1], continuationPrefix) {
			i++
			want = append(want, strings.TrimSpace(strings.TrimPrefix(b.lines[i], "#")))
		}
		cur.want = strings.Join(want, "\n")
		out = append(out, cur)
		cur = step{first: b.line + i + 1}
	}
	if slices.ContainsFunc(cur.script, isCommand) {
		cur.line = b.line + len(b.lines) - 1
		out = append(out, cur)
	}
	return out
}

// isCommand reports whether a line of shell does something: it is neither blank nor a comment.
func isCommand(line string) bool {
	line = strings.TrimSpace(line)
	return line != "" && !strings.HasPrefix(line, "#")
}

// compare returns nil when got, what a step printed, is what the README shows, want, and
// otherwise says where they differ.
func compare(want, got string) error {
	want, got = strings.TrimSpace(want), strings.TrimSpace(got)
	if w, err := decodeJSON(want); err == nil {
		g, err := decodeJSON(got)
		if err != nil {
			return fmt.Errorf("want JSON %s, got %q", want, got)
		}
		return compareJSON("$", w, g)
	}
	if !wildcard(want).MatchString(got) {
		return fmt.Errorf("want %q, got %q", want, got)
	}
	return nil
}

// decodeJSON decodes exactly one JSON value, keeping numbers as they are written.
func decodeJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one JSON value")
	}
	return v, nil
}

// compareJSON compares got with want at path, where a string of want holding "…" matches
// as a wildcard, and "…" alone matches any value.
func compareJSON(path string, want, got any) error {
	switch w := want.(type) {
	case string:
		if w == "…" {
			return nil
		}
		if g, ok := got.(string); ok && wildcard(w).MatchString(g) {
			return nil
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			break
		}
		for _, k := range sortedKeys(g) {
			if _, ok := w[k]; !ok {
				return fmt.Errorf("%s: unexpected field %q: %s", path, k, marshal(g[k]))
			}
		}
		for _, k := range sortedKeys(w) {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("%s: missing field %q", path, k)
			}
			if err := compareJSON(path+"."+k, w[k], gv); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok {
			break
		}
		if len(g) != len(w) {
			return fmt.Errorf("%s: want %d elements, got %d: %s", path, len(w), len(g), marshal(g))
		}
		for i := range w {
			if err := compareJSON(fmt.Sprintf("%s[%d]", path, i), w[i], g[i]); err != nil {
				return err
			}
		}
		return nil
	default:
		if reflect.DeepEqual(want, got) {
			return nil
		}
	}
	return fmt.Errorf("%s: want %s, got %s", path, marshal(want), marshal(got))
}

// wildcard is a pattern matching s exactly, with every "…" matching any text.
func wildcard(s string) *regexp.Regexp {
	parts := strings.Split(s, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`(?s)\A` + strings.Join(parts, ".*") + `\z`)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// marshal renders a decoded value for a message, without escaping "<", ">" and "&".
func marshal(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(b.String())
}

func TestCompareFollowsTheREADMEConvention(t *testing.T) {
	for _, tc := range []struct {
		name, want, got string
		match           bool
	}{
		{"JSON matches whatever the order of its fields and its spacing",
			`{"status":"ok","database":"ok"}`, "{\"database\": \"ok\",\n \"status\": \"ok\"}\n", true},
		{"… stands for a string", `{"id":"…"}`, `{"id":"5e0f3a7c-0000-4000-8000-000000000000"}`, true},
		{"… stands for null", `{"last_login":"…"}`, `{"last_login":null}`, true},
		{"… stands for a number", `{"expires_in":"…"}`, `{"expires_in":1800}`, true},
		{"… stands for the rest of a string", `{"user_agent":"curl/…"}`, `{"user_agent":"curl/8.5.0"}`, true},
		{"a string with … still needs its fixed part", `{"user_agent":"curl/…"}`, `{"user_agent":"Wget/1.21"}`, false},
		{"a different number fails", `{"invalidated_tokens":2}`, `{"invalidated_tokens":4}`, false},
		{"a different string fails", `{"user_agent":"AuthlyPhone/1.0"}`, `{"user_agent":"curl/8.5.0"}`, false},
		{"null is not false", `{"current":false}`, `{"current":null}`, false},
		{"a field the README does not show fails", `{"a":1}`, `{"a":1,"b":2}`, false},
		{"a field the output lacks fails", `{"a":1,"b":2}`, `{"a":1}`, false},
		{"one element more fails", `[{"a":1}]`, `[{"a":1},{"a":1}]`, false},
		{"elements are compared in order", `[{"a":1},{"a":2}]`, `[{"a":2},{"a":1}]`, false},
		{"JSON where the output is text fails", `{"a":1}`, `Not Found`, false},
		{"two JSON values where one is shown fail", `{"a":1}`, "{\"a\":1}\n{\"a\":1}", false},
		{"a status matches itself", `204`, "204\n", true},
		{"a different status fails", `204`, "404\n", false},
		{"text matches with …", `deleted … expired tokens`, `deleted 3 expired tokens`, true},
		{"no output where none is shown", ``, "\n", true},
		{"output where none is shown fails", ``, `{"a":1}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := compare(tc.want, tc.got)
			if (err == nil) != tc.match {
				t.Fatalf("compare(%q, %q) = %v, want a match: %v", tc.want, tc.got, err, tc.match)
			}
		})
	}
}

func TestStepsEndAtEachExpectedOutput(t *testing.T) {
	readme := strings.Join([]string{
		"# Authly",
		"## Using the API",
		"```sh",
		"make run",
		"```",
		"Text between blocks.",
		"```sh",
		"# Health",
		"curl -s $URL/health",
		"# => {\"database\":\"ok\",",
		"#     \"status\":\"ok\"}",
		"# Keep a value",
		"X=$(echo 1)",
		"echo $X",
		"# => 1",
		"",
		"Y=2",
		"```",
		"```json",
		"{}",
		"```",
		"```sh",
		"# only a comment",
		"```",
		"## Next section",
		"```sh",
		"not part of the walkthrough",
		"```",
	}, "\n")
	blocks, err := walkthroughBlocks(readme)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 3 || blocks[0].line != 4 || blocks[1].line != 8 || !slices.Equal(blocks[0].lines, []string{"make run"}) {
		t.Fatalf("blocks: %+v", blocks)
	}
	got := steps(blocks[1])
	want := []step{
		{first: 8, line: 10, script: []string{"# Health", "curl -s $URL/health"}, want: "{\"database\":\"ok\",\n\"status\":\"ok\"}"},
		{first: 12, line: 15, script: []string{"# Keep a value", "X=$(echo 1)", "echo $X"}, want: "1"},
		{first: 16, line: 17, script: []string{"", "Y=2"}, want: ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("steps:\n got %+v\nwant %+v", got, want)
	}
	if got := steps(blocks[2]); len(got) != 0 {
		t.Fatalf("a block of comments has steps: %+v", got)
	}
}
