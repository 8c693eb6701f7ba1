// Package docs holds what Authly serves about its own contract: openapi.yaml as built into
// the binary, and the API reference page at /docs with the Redoc script that renders it.
//
// assets/ is written by make (never by hand): `make generate` copies openapi.yaml there, and
// `make docs-assets` copies the Redoc bundle from the redoc npm package pinned in
// tools/openapi. `make generate-check` fails when either copy is stale.
package docs

import _ "embed"

//go:embed index.html
var page []byte

//go:embed assets/redoc.standalone.js
var script []byte

//go:embed assets/openapi.yaml
var spec []byte

// PageCSP is the Content-Security-Policy of the reference page, the only response that does
// not carry the server's default "default-src 'none'". It allows what Redoc needs and no
// more: its script and the document from this server, the styles it injects at run time,
// the blob: worker it builds its search index in, and data: images from its stylesheet.
// Nothing may come from another site.
const PageCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"connect-src 'self'; img-src 'self' data:; worker-src blob:; base-uri 'none'; " +
	"form-action 'none'; frame-ancestors 'none'"

// Page returns the reference page's HTML. The caller must not modify it.
func Page() []byte { return page }

// Script returns the Redoc standalone bundle that renders the page. The caller must not
// modify it.
func Script() []byte { return script }

// Spec returns openapi.yaml exactly as built into the binary. The caller must not modify it.
func Spec() []byte { return spec }
