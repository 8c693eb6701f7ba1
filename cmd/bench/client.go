package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// target is the Authly server under test.
type target struct {
	addr    string // host:port, on loopback
	timeout time.Duration
}

// conn is one kept-alive HTTP/1.1 connection, used by one worker at a time. It writes each
// request in one call and parses only what the benchmark needs from the answer (status,
// Content-Length or chunked framing, and the body when asked), so the load tool takes as
// little of the machine's CPU as it can, as wrk does. A connection that fails is closed and
// the next request dials again.
type conn struct {
	t    *target
	c    net.Conn
	br   *bufio.Reader
	req  []byte
	body []byte
	// retryAfter is the last answer's Retry-After in seconds, zero when it had none (or
	// gave a date, which Authly never sends). Like body, it holds until the next call.
	retryAfter time.Duration
}

func (t *target) conn() *conn { return &conn{t: t} }

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

var errMalformed = errors.New("malformed HTTP response")

// call sends one request and returns the status and, with keep set, the body. The body is
// only valid until the next call. The answer's Retry-After is left in c.retryAfter.
func (c *conn) call(method, path, bearer, contentType string, body []byte, keep bool) (status int, respBody []byte, err error) {
	c.retryAfter = 0
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.t.addr, 5*time.Second)
		if err != nil {
			return 0, nil, err
		}
		c.c, c.br = nc, bufio.NewReaderSize(nc, 16<<10)
	}
	r := c.req[:0]
	r = append(r, method...)
	r = append(r, ' ')
	r = append(r, path...)
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, c.t.addr...)
	r = append(r, "\r\nUser-Agent: authly-bench\r\n"...)
	if bearer != "" {
		r = append(r, "Authorization: Bearer "...)
		r = append(r, bearer...)
		r = append(r, "\r\n"...)
	}
	if contentType != "" {
		r = append(r, "Content-Type: "...)
		r = append(r, contentType...)
		r = append(r, "\r\n"...)
	}
	if body != nil || method == http.MethodPost || method == http.MethodPut {
		r = append(r, "Content-Length: "...)
		r = strconv.AppendInt(r, int64(len(body)), 10)
		r = append(r, "\r\n"...)
	}
	r = append(r, "\r\n"...)
	r = append(r, body...)
	c.req = r

	_ = c.c.SetDeadline(time.Now().Add(c.t.timeout))
	if _, err := c.c.Write(r); err != nil {
		c.close()
		return 0, nil, err
	}
	status, respBody, err = c.readResponse(keep)
	if err != nil {
		c.close()
		return 0, nil, err
	}
	return status, respBody, nil
}

func (c *conn) readResponse(keep bool) (int, []byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, nil, errMalformed
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, errMalformed
	}
	length, chunked, closing := int64(-1), false, false
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, nil, errMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return 0, nil, errMalformed
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("Retry-After")):
			if s, err := strconv.Atoi(string(value)); err == nil && s > 0 {
				c.retryAfter = time.Duration(s) * time.Second
			}
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		err = c.readChunked(keep)
	case length >= 0:
		err = c.readN(length, keep)
	default: // no framing: the body runs to the end of the connection
		var rest []byte
		rest, err = io.ReadAll(c.br)
		c.body, closing = append(c.body, rest...), true
	}
	if err != nil {
		return 0, nil, err
	}
	if closing {
		c.close()
	}
	if !keep {
		return status, nil, nil
	}
	return status, c.body, nil
}

func (c *conn) readN(n int64, keep bool) error {
	if n > 1<<20 {
		return errMalformed
	}
	if !keep {
		_, err := c.br.Discard(int(n))
		return err
	}
	start := len(c.body)
	c.body = slices.Grow(c.body, int(n))[:start+int(n)]
	_, err := io.ReadFull(c.br, c.body[start:])
	return err
}

func (c *conn) readChunked(keep bool) error {
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		sizeText, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		size, err := strconv.ParseInt(string(bytes.TrimSpace(sizeText)), 16, 64)
		if err != nil || size < 0 {
			return errMalformed
		}
		if size == 0 {
			for { // trailers, then the final CRLF
				line, err := c.br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if err := c.readN(size, keep); err != nil {
			return err
		}
		if _, err := c.br.Discard(2); err != nil {
			return err
		}
	}
}

type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

func loginBody(username, password string) []byte {
	b, _ := json.Marshal(map[string]string{"grant_type": "password", "username": username, "password": password})
	return b
}

func refreshBody(refreshToken string) []byte {
	// A JWT is base64url and dots only: nothing to escape.
	return []byte(`{"grant_type":"refresh_token","refresh_token":"` + refreshToken + `"}`)
}

// login runs the password grant and returns the pair, or the status it got.
func (c *conn) login(body []byte) (tokenPair, int, error) {
	status, b, err := c.call(http.MethodPost, "/api/v1/auth/token", "", "application/json", body, true)
	if err != nil || status != http.StatusOK {
		return tokenPair{}, status, err
	}
	var p tokenPair
	if err := json.Unmarshal(b, &p); err != nil || p.AccessToken == "" || p.RefreshToken == "" {
		return tokenPair{}, status, fmt.Errorf("login: unexpected body")
	}
	return p, status, nil
}
