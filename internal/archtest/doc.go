// Package archtest owns the import rules between Authly's packages and holds no code: its
// test fails when the domain (internal/service) imports net/http or the generated HTTP code
// (internal/gen/api), even through another package of the module, or when any package imports
// both net/http and the generated queries (internal/gen/db). SQL stays behind the domain, and
// HTTP in the transport (internal/httpapi).
package archtest
