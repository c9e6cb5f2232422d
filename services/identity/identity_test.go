package identity_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/services/identity"
	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
)

func newSigner(t *testing.T) *identity.Signer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, err := identity.NewSigner(base64.StdEncoding.EncodeToString(priv.Seed()), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignVerify(t *testing.T) {
	s := newSigner(t)
	v, err := identity.NewVerifier(t.Context(), func(context.Context) (string, error) { return s.JWKS(), nil })
	if err != nil {
		t.Fatal(err)
	}
	want := &authv1.Identity{KeyId: "k1", AccountId: "a1", Tier: "pro", Role: authv1.Role_ROLE_ADMIN}
	now := time.Now()
	tok, exp := s.Sign(want, now)
	if !exp.After(now) {
		t.Fatalf("expiry %v", exp)
	}
	got, err := v.Verify(t.Context(), tok, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyId != "k1" || got.AccountId != "a1" || got.Tier != "pro" || got.Role != authv1.Role_ROLE_ADMIN {
		t.Fatalf("identity %v", got)
	}

	// Expired, tampered, foreign key, garbage: all refused.
	if _, err := v.Verify(t.Context(), tok, now.Add(2*time.Minute)); !errors.Is(err, identity.ErrInvalid) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: %v", err)
	}
	parts := strings.Split(tok, ".")
	forged, _ := s.Sign(&authv1.Identity{KeyId: "k1", AccountId: "someone-else"}, now)
	if _, err := v.Verify(t.Context(), parts[0]+"."+strings.Split(forged, ".")[1]+"."+parts[2], now); !errors.Is(err, identity.ErrInvalid) {
		t.Errorf("claims swapped under another signature: %v", err)
	}
	other := newSigner(t)
	otherTok, _ := other.Sign(want, now)
	if _, err := v.Verify(t.Context(), otherTok, now); !errors.Is(err, identity.ErrInvalid) {
		t.Errorf("token of another key: %v", err)
	}
	if _, err := v.Verify(t.Context(), "not-a-token", now); !errors.Is(err, identity.ErrInvalid) {
		t.Errorf("garbage: %v", err)
	}
	if _, err := identity.NewSigner("c2hvcnQ=", time.Minute); err == nil {
		t.Error("a short seed was accepted")
	}
}
