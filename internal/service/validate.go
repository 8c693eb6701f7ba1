package service

import (
	_ "embed"
	"net/mail"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Password policy, NIST SP 800-63B §3.1.1.2: a length floor, no composition rules, bcrypt's
// 72-byte input limit rejected rather than silently truncated, and a blocklist.
const (
	minPasswordChars = 8
	maxPasswordBytes = 72
	maxEmailBytes    = 254
)

// usernamePattern allows ASCII letters, digits, '.', '_' and '-'. Excluding '@' means a
// login name containing '@' is always an email.
var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{3,50}$`)

//go:embed data/common-passwords.txt
var commonPasswordsData string

var commonPasswords = func() map[string]struct{} {
	set := map[string]struct{}{}
	for line := range strings.SplitSeq(commonPasswordsData, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		set[strings.ToLower(line)] = struct{}{}
	}
	return set
}()

// CheckText rejects invalid UTF-8 and control characters, which have no place in a name,
// an address or a password and are a common vehicle for log and header injection.
func CheckText(field, v string) *FieldError {
	if !utf8.ValidString(v) {
		return &FieldError{Field: field, Message: "must be valid UTF-8"}
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return &FieldError{Field: field, Message: "must not contain control characters"}
		}
	}
	return nil
}

func validateUsername(v string) *FieldError {
	if fe := CheckText("username", v); fe != nil {
		return fe
	}
	if !usernamePattern.MatchString(v) {
		return &FieldError{Field: "username", Message: "must be 3 to 50 letters, digits, '.', '_' or '-'"}
	}
	return nil
}

// normalizeEmail validates an address and returns it lower-cased.
func normalizeEmail(v string) (string, *FieldError) {
	if fe := CheckText("email", v); fe != nil {
		return "", fe
	}
	if len(v) > maxEmailBytes {
		return "", &FieldError{Field: "email", Message: "must be at most 254 bytes"}
	}
	addr, err := mail.ParseAddress(v)
	// A bare address only: no display name, no comments, no angle brackets.
	if err != nil || addr.Name != "" || addr.Address != v || !strings.Contains(v, "@") {
		return "", &FieldError{Field: "email", Message: "must be a valid email address"}
	}
	return strings.ToLower(v), nil
}

// validatePassword applies the password policy. username and email are the account's, for
// the rule that a password may not equal either.
func validatePassword(password, username, email string) *FieldError {
	if fe := CheckText("password", password); fe != nil {
		return fe
	}
	if utf8.RuneCountInString(password) < minPasswordChars {
		return &FieldError{Field: "password", Message: "must be at least 8 characters"}
	}
	if len(password) > maxPasswordBytes {
		return &FieldError{Field: "password", Message: "must be at most 72 bytes"}
	}
	if strings.EqualFold(password, username) || strings.EqualFold(password, email) {
		return &FieldError{Field: "password", Message: "must not equal the username or email"}
	}
	if _, common := commonPasswords[strings.ToLower(password)]; common {
		return &FieldError{Field: "password", Message: "is too common"}
	}
	return nil
}

// Collect gathers the non-nil field errors into one invalid_request error, or nil.
func Collect(fes ...*FieldError) error {
	var fields []FieldError
	for _, fe := range fes {
		if fe != nil {
			fields = append(fields, *fe)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return InvalidFields(fields...)
}
