// Package password owns how Authly hashes and checks passwords: bcrypt, and Argon2id in the
// PHC string format, chosen by AUTHLY_PASSWORD_HASH. Every stored hash says which algorithm and
// which parameters made it, so Verify checks a hash of either kind whatever the current choice,
// and NeedsRehash tells a login when the stored hash should be replaced by one made with the
// current choice (docs/security.md, "Password hashing").
//
// The work here is CPU- and, for Argon2id, memory-heavy: callers run it inside the bounded pool
// of internal/hashpool, which caps how many hashes run at once and so how much memory they take.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Algorithm names, as AUTHLY_PASSWORD_HASH takes them.
const (
	AlgorithmBcrypt   = "bcrypt"
	AlgorithmArgon2id = "argon2id"
)

// Hasher makes new password hashes with one algorithm and one set of parameters.
type Hasher interface {
	// Hash returns the encoded hash of password, salted at random.
	Hash(password []byte) ([]byte, error)
	// NeedsRehash reports whether hash was made by another algorithm or with other parameters
	// than this Hasher's, so that a login that has just proved the password should store a new
	// hash. A hash that cannot be parsed needs one too.
	NeedsRehash(hash []byte) bool
	// Algorithm is AlgorithmBcrypt or AlgorithmArgon2id.
	Algorithm() string
	// MemoryBytes is how much memory one Hash or Verify with these parameters allocates, about:
	// Argon2id's m; a few KiB for bcrypt.
	MemoryBytes() int64
}

// ErrMalformedHash means a stored hash is of no known format, or its parameters are out of
// range.
var ErrMalformedHash = errors.New("password: malformed hash")

// Verify reports whether password matches hash, a bcrypt hash ($2a$, $2b$, $2y$) or an Argon2id
// PHC string ($argon2id$), whichever the current Hasher is: hashes made before a change of
// algorithm keep working. It returns false with a nil error on a mismatch, and an error only
// when hash cannot be checked at all.
func Verify(hash, password []byte) (bool, error) {
	switch {
	case isArgon2id(hash):
		p, salt, key, err := parseArgon2id(hash)
		if err != nil {
			return false, err
		}
		got := argon2.IDKey(password, salt, p.Iterations, p.MemoryKiB, p.Parallelism, uint32(len(key)))
		return subtle.ConstantTimeCompare(got, key) == 1, nil
	case isBcrypt(hash):
		err := bcrypt.CompareHashAndPassword(hash, password)
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%w: %w", ErrMalformedHash, err)
		}
		return true, nil
	}
	return false, ErrMalformedHash
}

func isBcrypt(hash []byte) bool {
	s := string(hash)
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

func isArgon2id(hash []byte) bool { return strings.HasPrefix(string(hash), "$argon2id$") }

// Bcrypt hashes with bcrypt at Cost (bcrypt.MinCost to bcrypt.MaxCost).
type Bcrypt struct{ Cost int }

// NewBcrypt returns a bcrypt Hasher, refusing a cost outside bcrypt's range.
func NewBcrypt(cost int) (Bcrypt, error) {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return Bcrypt{}, fmt.Errorf("bcrypt cost must be from %d to %d (got %d)", bcrypt.MinCost, bcrypt.MaxCost, cost)
	}
	return Bcrypt{Cost: cost}, nil
}

// Hash returns the bcrypt hash of password. A password over bcrypt's 72 bytes is refused
// (bcrypt.ErrPasswordTooLong, wrapped) rather than silently truncated.
func (b Bcrypt) Hash(password []byte) ([]byte, error) {
	h, err := bcrypt.GenerateFromPassword(password, b.Cost)
	if err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	return h, nil
}

// NeedsRehash reports whether hash is not a bcrypt hash at this cost.
func (b Bcrypt) NeedsRehash(hash []byte) bool {
	if !isBcrypt(hash) {
		return true
	}
	cost, err := bcrypt.Cost(hash)
	return err != nil || cost != b.Cost
}

// Algorithm is AlgorithmBcrypt.
func (Bcrypt) Algorithm() string { return AlgorithmBcrypt }

// MemoryBytes is bcrypt's state, about 4 KiB.
func (Bcrypt) MemoryBytes() int64 { return 4 << 10 }

// Argon2id parameters recommended by the OWASP Password Storage Cheat Sheet: 19 MiB of memory,
// two passes, one lane.
const (
	DefaultArgon2MemoryKiB   = 19 * 1024
	DefaultArgon2Iterations  = 2
	DefaultArgon2Parallelism = 1
)

// Bounds of the Argon2id parameters Authly accepts, in configuration and in stored hashes: a
// stored hash asking for more would let whoever can write one make every login of that account
// allocate without limit.
const (
	MinArgon2MemoryKiB   = 8 * 1024
	MaxArgon2MemoryKiB   = 256 * 1024
	MinArgon2Iterations  = 1
	MaxArgon2Iterations  = 16
	MaxArgon2Parallelism = 16
)

const (
	argon2SaltBytes = 16
	argon2KeyBytes  = 32
)

// Argon2id hashes with Argon2id (RFC 9106), encoded in the PHC string format:
// $argon2id$v=19$m=<KiB>,t=<iterations>,p=<parallelism>$<salt>$<hash>, with the salt and hash
// in unpadded standard base64.
type Argon2id struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
}

// NewArgon2id returns an Argon2id Hasher, refusing parameters outside the accepted bounds.
func NewArgon2id(memoryKiB, iterations, parallelism int) (Argon2id, error) {
	p := Argon2id{MemoryKiB: uint32(memoryKiB), Iterations: uint32(iterations), Parallelism: uint8(parallelism)}
	if err := p.check(memoryKiB, iterations, parallelism); err != nil {
		return Argon2id{}, err
	}
	return p, nil
}

func (Argon2id) check(memoryKiB, iterations, parallelism int) error {
	var errs []error
	if memoryKiB < MinArgon2MemoryKiB || memoryKiB > MaxArgon2MemoryKiB {
		errs = append(errs, fmt.Errorf("argon2id memory must be from %d to %d KiB (got %d)", MinArgon2MemoryKiB, MaxArgon2MemoryKiB, memoryKiB))
	}
	if iterations < MinArgon2Iterations || iterations > MaxArgon2Iterations {
		errs = append(errs, fmt.Errorf("argon2id iterations must be from %d to %d (got %d)", MinArgon2Iterations, MaxArgon2Iterations, iterations))
	}
	if parallelism < 1 || parallelism > MaxArgon2Parallelism {
		errs = append(errs, fmt.Errorf("argon2id parallelism must be from 1 to %d (got %d)", MaxArgon2Parallelism, parallelism))
	}
	return errors.Join(errs...)
}

// Hash returns the PHC string of password's Argon2id hash with a fresh 128-bit salt.
func (a Argon2id) Hash(password []byte) ([]byte, error) {
	salt := make([]byte, argon2SaltBytes)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	key := argon2.IDKey(password, salt, a.Iterations, a.MemoryKiB, a.Parallelism, argon2KeyBytes)
	enc := base64.RawStdEncoding
	return fmt.Appendf(nil, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, a.MemoryKiB, a.Iterations, a.Parallelism, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// NeedsRehash reports whether hash is not an Argon2id hash with exactly these parameters.
func (a Argon2id) NeedsRehash(hash []byte) bool {
	if !isArgon2id(hash) {
		return true
	}
	p, _, key, err := parseArgon2id(hash)
	return err != nil || p != a || len(key) != argon2KeyBytes
}

// Algorithm is AlgorithmArgon2id.
func (Argon2id) Algorithm() string { return AlgorithmArgon2id }

// MemoryBytes is m, the memory one hash fills.
func (a Argon2id) MemoryBytes() int64 { return int64(a.MemoryKiB) << 10 }

// String renders the parameters as the PHC string writes them.
func (a Argon2id) String() string {
	return fmt.Sprintf("m=%d,t=%d,p=%d", a.MemoryKiB, a.Iterations, a.Parallelism)
}

// parseArgon2id reads a PHC string made by Hash. Parameters beyond the accepted bounds are
// refused before any work is done.
func parseArgon2id(hash []byte) (Argon2id, []byte, []byte, error) {
	fail := func(why string) (Argon2id, []byte, []byte, error) {
		return Argon2id{}, nil, nil, fmt.Errorf("%w: argon2id: %s", ErrMalformedHash, why)
	}
	parts := strings.Split(string(hash), "$")
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return fail("not a PHC string")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return fail("unsupported version")
	}
	var m, t, p int
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return fail("parameters must be m, t and p")
	}
	for i, want := range []struct {
		name string
		to   *int
	}{{"m", &m}, {"t", &t}, {"p", &p}} {
		name, value, ok := strings.Cut(fields[i], "=")
		n, err := strconv.Atoi(value)
		if !ok || name != want.name || err != nil {
			return fail("parameters must be m, t and p")
		}
		*want.to = n
	}
	params := Argon2id{}
	if err := params.check(m, t, p); err != nil {
		return fail(err.Error())
	}
	params = Argon2id{MemoryKiB: uint32(m), Iterations: uint32(t), Parallelism: uint8(p)}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return fail("bad salt")
	}
	key, err := enc.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return fail("bad hash")
	}
	return params, salt, key, nil
}
