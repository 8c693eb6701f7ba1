package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// The tokens Authly signs have one exact layout. codec writes that layout directly instead of
// going through golang-jwt's map header and reflective claims, and reads it back the same
// way. Signing yields the very bytes golang-jwt would produce (token_compact_test.go checks
// that against the library). Verification has two paths: a token in exactly that layout with
// a valid signature is checked here; any other token, and any token that fails a check here,
// goes to golang-jwt, which decides. So the fast path only ever accepts what the library
// would accept, and every refusal is the library's.
//
// The layout, with claims in the order golang-jwt's RegisteredClaims marshals them:
//
//	base64url({"alg":"HS256","typ":"at+jwt"}) . base64url({"iss":…,"sub":"<uuid>","exp":N,"nbf":N,"iat":N,"jti":"<22 chars>","sid":"<uuid>"}) . base64url(HMAC)
type codec struct {
	issuerKey []byte              // `{"iss":<issuer as JSON>,"sub":"`
	headers   map[Type]string     // the encoded header segment of each type, with its '.'
	macs      map[Type]*sync.Pool // HMACs keyed for each type, reused
	sizes     map[Type]int        // the signature's length in bytes
}

// newCodec returns nil when tokens cannot have the layout: golang-jwt omits an empty issuer.
func newCodec(alg string, issuer string, key func(Type) []byte) *codec {
	hashFunc := hashFor(alg)
	if hashFunc == nil || issuer == "" {
		return nil
	}
	iss, _ := json.Marshal(issuer) // a string always marshals
	c := &codec{
		issuerKey: append(append([]byte(`{"iss":`), iss...), `,"sub":"`...),
		headers:   map[Type]string{},
		macs:      map[Type]*sync.Pool{},
		sizes:     map[Type]int{},
	}
	for _, typ := range []Type{Access, Refresh} {
		header, _ := json.Marshal(map[string]string{"alg": alg, "typ": typ.header()})
		c.headers[typ] = base64.RawURLEncoding.EncodeToString(header) + "."
		k := key(typ)
		c.macs[typ] = &sync.Pool{New: func() any { return hmac.New(hashFunc, k) }}
		c.sizes[typ] = hashFunc().Size()
	}
	return c
}

func hashFor(alg string) func() hash.Hash {
	switch alg {
	case "HS256":
		return sha256.New
	case "HS384":
		return sha512.New384
	case "HS512":
		return sha512.New
	}
	return nil
}

// claimsJSON appends the payload in the layout above. Times are whole seconds, as golang-jwt
// writes them.
func (c *codec) claimsJSON(b []byte, userID, sessionID uuid.UUID, jti string, iat, exp time.Time) []byte {
	b = append(b, c.issuerKey...)
	b = appendUUID(b, userID)
	b = append(b, `","exp":`...)
	b = strconv.AppendInt(b, exp.Unix(), 10)
	b = append(b, `,"nbf":`...)
	b = strconv.AppendInt(b, iat.Unix(), 10)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, iat.Unix(), 10)
	b = append(b, `,"jti":"`...)
	b = append(b, jti...)
	b = append(b, `","sid":"`...)
	b = appendUUID(b, sessionID)
	return append(b, `"}`...)
}

func appendUUID(b []byte, id uuid.UUID) []byte {
	var s [36]byte
	hex := "0123456789abcdef"
	j := 0
	for i, v := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hex[v>>4], hex[v&0x0f]
		j += 2
	}
	return append(b, s[:]...)
}

// sign returns the token for a payload: header, payload and HMAC, base64url-encoded.
func (c *codec) sign(typ Type, payload []byte) string {
	header := c.headers[typ]
	enc := base64.RawURLEncoding
	size := c.sizes[typ]
	n := len(header) + enc.EncodedLen(len(payload)) + 1 + enc.EncodedLen(size)
	buf := make([]byte, 0, n)
	buf = append(buf, header...)
	buf = enc.AppendEncode(buf, payload)
	mac := c.macs[typ].Get().(hash.Hash)
	mac.Reset()
	mac.Write(buf)
	var sum [sha512.Size]byte
	sig := mac.Sum(sum[:0])
	c.macs[typ].Put(mac)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf)
}

// verify checks a token of the exact layout: header, signature, issuer and times as the
// golang-jwt parser configured in NewIssuer would. It reports ok=false for anything else,
// and for any failed check; the caller then lets golang-jwt decide.
func (c *codec) verify(typ Type, raw string, now time.Time) (Verified, bool) {
	header := c.headers[typ]
	if !strings.HasPrefix(raw, header) {
		return Verified{}, false
	}
	dot := strings.LastIndexByte(raw, '.')
	if dot <= len(header) {
		return Verified{}, false
	}
	signed, sigText := raw[:dot], raw[dot+1:]
	enc := base64.RawURLEncoding
	size := c.sizes[typ]
	if len(sigText) != enc.EncodedLen(size) {
		return Verified{}, false
	}
	mac := c.macs[typ].Get().(hash.Hash)
	mac.Reset()
	mac.Write([]byte(signed))
	var sum [sha512.Size]byte
	want := mac.Sum(sum[:0])
	c.macs[typ].Put(mac)
	var encoded [86]byte // base64 of a SHA-512 HMAC
	if subtle.ConstantTimeCompare(enc.AppendEncode(encoded[:0], want), []byte(sigText)) != 1 {
		return Verified{}, false
	}

	var payload [512]byte
	p, err := enc.AppendDecode(payload[:0], []byte(signed[len(header):]))
	if err != nil {
		return Verified{}, false
	}
	cl, ok := c.parseClaims(p)
	if !ok {
		return Verified{}, false
	}
	// The checks of golang-jwt's validator with WithLeeway, WithExpirationRequired and
	// WithIssuedAt; the issuer was compared with the layout.
	if !now.Before(cl.exp.Add(Leeway)) || now.Before(cl.nbf.Add(-Leeway)) || now.Before(cl.iat.Add(-Leeway)) {
		return Verified{}, false
	}
	return Verified{ID: cl.jti, UserID: cl.sub, SessionID: cl.sid, ExpiresAt: cl.exp}, true
}

type compactClaims struct {
	sub, sid      uuid.UUID
	jti           string
	exp, nbf, iat time.Time
}

// parseClaims reads a payload in exactly the layout claimsJSON writes.
func (c *codec) parseClaims(p []byte) (compactClaims, bool) {
	var cl compactClaims
	rest, ok := bytes.CutPrefix(p, c.issuerKey)
	if !ok {
		return cl, false
	}
	var sub, sid, jti []byte
	var exp, nbf, iat int64
	if sub, rest, ok = cutString(rest, 36, `","exp":`); !ok {
		return cl, false
	}
	if exp, rest, ok = cutInt(rest, `,"nbf":`); !ok {
		return cl, false
	}
	if nbf, rest, ok = cutInt(rest, `,"iat":`); !ok {
		return cl, false
	}
	if iat, rest, ok = cutInt(rest, `,"jti":"`); !ok {
		return cl, false
	}
	if jti, rest, ok = cutString(rest, jtiTextLen, `","sid":"`); !ok {
		return cl, false
	}
	if sid, rest, ok = cutString(rest, 36, `"}`); !ok || len(rest) != 0 {
		return cl, false
	}
	if cl.sub, ok = parseUUID(sub); !ok {
		return cl, false
	}
	if cl.sid, ok = parseUUID(sid); !ok {
		return cl, false
	}
	cl.jti = string(jti)
	cl.exp, cl.nbf, cl.iat = time.Unix(exp, 0), time.Unix(nbf, 0), time.Unix(iat, 0)
	return cl, true
}

// parseUUID reads the form appendUUID writes: 36 bytes, lower-case hex, dashes at 8, 13,
// 18 and 23. Any other form is left to the library.
func parseUUID(b []byte) (uuid.UUID, bool) {
	var id uuid.UUID
	if len(b) != 36 || b[8] != '-' || b[13] != '-' || b[18] != '-' || b[23] != '-' {
		return id, false
	}
	j := 0
	for i := 0; i < 36; i += 2 {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
		}
		hi, ok1 := lowerHex(b[i])
		lo, ok2 := lowerHex(b[i+1])
		if !ok1 || !ok2 {
			return id, false
		}
		id[j] = hi<<4 | lo
		j++
	}
	return id, true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// jtiTextLen is the length of a token id: 16 random bytes in unpadded base64url.
var jtiTextLen = base64.RawURLEncoding.EncodedLen(jtiBytes)

// cutString takes n bytes, which must hold no quote or backslash, followed by sep.
func cutString(b []byte, n int, sep string) ([]byte, []byte, bool) {
	if len(b) < n+len(sep) || string(b[n:n+len(sep)]) != sep || bytes.ContainsAny(b[:n], `"\`) {
		return nil, nil, false
	}
	return b[:n], b[n+len(sep):], true
}

// cutInt takes a non-negative decimal integer without leading zeros, followed by sep.
func cutInt(b []byte, sep string) (int64, []byte, bool) {
	i := bytes.Index(b, []byte(sep))
	if i <= 0 || i > 12 || (b[0] == '0' && i > 1) {
		return 0, nil, false
	}
	v, err := strconv.ParseInt(string(b[:i]), 10, 64)
	if err != nil || v < 0 {
		return 0, nil, false
	}
	return v, b[i+len(sep):], true
}
