package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"strings"
)

const secretPrefix = "sk-"

var alphabet = []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

// newSecret is "sk-" and 40 base62 characters (238 bits).
func newSecret() string {
	b := make([]byte, 40)
	n := big.NewInt(int64(len(alphabet)))
	for i := range b {
		x, _ := rand.Int(rand.Reader, n)
		b[i] = alphabet[x.Int64()]
	}
	return secretPrefix + string(b)
}

// newID is a key's public id.
func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "key_" + hex.EncodeToString(b)
}

// hasher hashes secrets under the pepper from Vault.
type hasher struct{ pepper []byte }

func (h hasher) hash(secret string) string {
	m := hmac.New(sha256.New, h.pepper)
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil))
}

// displayPrefix is what a key list shows: "sk-" and 4 characters.
func displayPrefix(secret string) string { return secret[:len(secretPrefix)+4] }

// masked is how a bad key is echoed in errors: its last 4 characters.
func masked(secret string) string {
	if len(secret) < 8 {
		return "****"
	}
	return "****" + secret[len(secret)-4:]
}

// bearer extracts the key of an Authorization header.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
