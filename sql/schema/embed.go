// Package schema embeds Authly's golang-migrate migrations so the server binary
// can apply them at start without the source tree.
package schema

import "embed"

// FS holds every NNNNNN_name.up.sql and .down.sql migration in this folder.
//
//go:embed *.sql
var FS embed.FS
