// Package readmetest owns the promise that README.md's walkthrough runs as written, and holds
// no code. Its test starts the authly binary with the README's own start command, on a fresh
// database, then runs every shell block of "Using the API" in order, in one bash with curl,
// and compares what each command prints with the "# =>" line the README shows under it.
//
// The convention, as the README states it: a "# =>" comment line, with any following comment
// lines indented by more than one space, is the output of the commands above it, back to the
// previous "# =>" line or the start of the block. "…" stands for anything: a whole value
// ("id":"…") or a part of a string ("curl/…"). Output that is JSON is compared by structure,
// so neither the order of fields nor spacing matters; anything else is compared as text.
// Commands with no "# =>" line after them must print nothing.
package readmetest
