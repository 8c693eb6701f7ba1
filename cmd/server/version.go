package main

import (
	"context"
	"fmt"
)

const versionUsage = `Usage: authly version
       authly --version

Prints the version of this build.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

var versionCommand = command{
	usage: versionUsage,
	run: func(_ context.Context, inv invocation) error {
		if err := noArguments("version", inv.args); err != nil {
			return err
		}
		fmt.Fprintln(inv.stdout, "authly", version)
		return nil
	},
}
