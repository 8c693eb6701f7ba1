package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestVersionCommand(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"version"}, envFrom(nil), nil, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(stdout.String()); got != "authly "+version {
		t.Fatalf("version printed %q", got)
	}
}

func TestTheVersionFlagPrintsWhatTheVersionCommandDoes(t *testing.T) {
	for _, flag := range []string{"--version", "-version"} {
		var stdout, stderr bytes.Buffer
		// No configuration at all: the version needs none.
		if err := run(context.Background(), []string{flag}, envFrom(nil), nil, &stdout, &stderr); err != nil {
			t.Fatalf("%s: %v", flag, err)
		}
		if stdout.String() != "authly "+version+"\n" || stderr.Len() > 0 {
			t.Fatalf("%s printed %q, stderr %q", flag, stdout.String(), stderr.String())
		}
	}
}
