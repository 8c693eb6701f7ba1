package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/authly/authly/internal/service"
)

// maxJSONDepth bounds how deeply a request body may nest. No body of the contract nests
// deeper than 2; the bound stops a hostile document long before it costs anything.
const maxJSONDepth = 32

// jsonFrame is one open object or array while checkJSON walks a document.
type jsonFrame struct {
	path      string
	keys      map[string]struct{} // the keys seen so far; nil for an array
	expectKey bool                // in an object, the next string is a key
	key       string              // in an object, the key of the value being read
	index     int                 // in an array, the index of the value being read
}

// childPath is the JSON pointer, without its leading slash, of the value being read in f.
func (f *jsonFrame) childPath() string {
	step := f.key
	if f.keys == nil {
		step = strconv.Itoa(f.index)
	}
	return strings.TrimPrefix(f.path+"/"+step, "/")
}

// valueDone moves f past the value just read.
func (f *jsonFrame) valueDone() {
	if f.keys != nil {
		f.expectKey = true
	} else {
		f.index++
	}
}

// checkJSON accepts exactly one JSON value, strictly: no duplicate keys (parsers disagree on
// which one wins, a classic way to smuggle a field past a check), no nesting deeper than
// maxJSONDepth, and no control characters in any string or key. It reads tokens one at a
// time, so a hostile document fails as soon as it goes wrong, without being built in memory.
func checkJSON(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var (
		stack   []*jsonFrame
		started bool
	)
	top := func() *jsonFrame {
		if len(stack) == 0 {
			return nil
		}
		return stack[len(stack)-1]
	}
	field := func(path string) string {
		if path == "" {
			return "body"
		}
		return path
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if !started {
				return service.InvalidFields(service.FieldError{Field: "body", Message: "is not valid JSON"})
			}
			return nil
		}
		if err != nil {
			return service.InvalidFields(service.FieldError{Field: "body", Message: "is not valid JSON"})
		}
		if started && len(stack) == 0 {
			return service.InvalidFields(service.FieldError{Field: "body", Message: "must hold a single JSON value"})
		}
		started = true
		parent := top()
		path := ""
		if parent != nil {
			path = parent.childPath()
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return service.InvalidFields(service.FieldError{Field: "body", Message: "nests too deeply"})
				}
				f := &jsonFrame{path: path}
				if t == '{' {
					f.keys, f.expectKey = map[string]struct{}{}, true
				}
				stack = append(stack, f)
				continue
			default: // '}' or ']'
				stack = stack[:len(stack)-1]
			}
		case string:
			if parent != nil && parent.expectKey {
				parent.key, parent.expectKey = t, false
				if strings.IndexFunc(t, unicode.IsControl) >= 0 {
					return service.InvalidFields(service.FieldError{Field: parent.childPath(), Message: "must not contain control characters"})
				}
				if _, dup := parent.keys[t]; dup {
					return service.InvalidFields(service.FieldError{Field: parent.childPath(), Message: "must appear once"})
				}
				parent.keys[t] = struct{}{}
				continue
			}
			if strings.IndexFunc(t, unicode.IsControl) >= 0 {
				return service.InvalidFields(service.FieldError{Field: field(path), Message: "must not contain control characters"})
			}
		}
		if p := top(); p != nil {
			p.valueDone()
		}
	}
}
