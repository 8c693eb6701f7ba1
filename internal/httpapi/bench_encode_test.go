package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/authly/authly/internal/gen/api"
)

// The JSON bodies Authly writes most: a token pair on every login and refresh, a user on
// every GET /users/me. Encoded as the generated strict handlers encode them.

func BenchmarkEncodeTokenResponse(b *testing.B) {
	body := api.TokenResponse{
		AccessToken:  "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9." + string(bytes.Repeat([]byte("a"), 260)) + ".sig-sig-sig-sig-sig-sig-sig-sig-sig-sig-si",
		RefreshToken: "eyJhbGciOiJIUzI1NiIsInR5cCI6InJ0K2p3dCJ9." + string(bytes.Repeat([]byte("r"), 260)) + ".sig-sig-sig-sig-sig-sig-sig-sig-sig-sig-si",
		TokenType:    api.Bearer,
		ExpiresIn:    1800,
	}
	benchEncode(b, func(w *httptest.ResponseRecorder) error {
		return api.CreateToken200JSONResponse{Body: body}.VisitCreateTokenResponse(w)
	})
}

func BenchmarkEncodeUser(b *testing.B) {
	now := time.Date(2030, 3, 14, 15, 9, 26, 535897000, time.UTC)
	body := api.User{
		Id: uuid.MustParse("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"), Username: "alice", Email: "alice@example.com",
		CreatedAt: now, UpdatedAt: now, LastLogin: &now, IsActive: true, IsVerified: true,
	}
	benchEncode(b, func(w *httptest.ResponseRecorder) error {
		return api.GetCurrentUser200JSONResponse{Body: body}.VisitGetCurrentUserResponse(w)
	})
}

func benchEncode(b *testing.B, visit func(*httptest.ResponseRecorder) error) {
	b.ReportAllocs()
	w := httptest.NewRecorder()
	for b.Loop() {
		w.Body.Reset()
		if err := visit(w); err != nil {
			b.Fatal(err)
		}
	}
	var v map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		b.Fatal(err)
	}
}
