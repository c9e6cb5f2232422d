package webhooks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts an endpoint's secret, as the Standard Webhooks
// specification writes them: "whsec_" and the base64 of the key.
const SecretPrefix = "whsec_"

// newSecret is a fresh signing key (24 random bytes) and its written form.
func newSecret() ([]byte, string) {
	key := make([]byte, 24)
	_, _ = rand.Read(key)
	return key, SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// Sign is the webhook-signature header of a delivery: "v1," and the
// base64 HMAC-SHA256, under the key, of "ID.TIMESTAMP.BODY".
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Verify checks a delivery's headers as a receiver would: one of the
// space-separated v1 signatures matches, and the timestamp is within
// tolerance of now.
func Verify(secret, id, timestamp, signatures string, body []byte, now time.Time, tolerance time.Duration) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return errors.New("the secret is not whsec_ and base64")
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("webhook-timestamp is not a Unix time")
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return errors.New("webhook-timestamp is too far from now")
	}
	want := Sign(key, id, ts, body)
	for _, s := range strings.Fields(signatures) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("no signature matches")
}

// sealer encrypts the endpoints' keys at rest (AES-256-GCM under a key
// derived from the service's Vault-held secret_key): the database alone
// does not give them away.
type sealer struct{ aead cipher.AEAD }

func newSealer(secretKey string) (*sealer, error) {
	k := sha256.Sum256([]byte("bulkhead webhooks secrets\x00" + secretKey))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(plain []byte, endpoint string) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, []byte(endpoint))
}

func (s *sealer) open(sealed []byte, endpoint string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed secret too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], []byte(endpoint))
}
