package platform

import (
	"crypto/rand"
	"math/big"
	"strings"
)

// NewID is prefix and 24 random characters of a-z and 0-9 (about 124
// bits): the ids the public API shows for what a service makes, such as
// "file-…" or "we_…".
func NewID(prefix string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b strings.Builder
	b.WriteString(prefix)
	for range 24 {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b.WriteByte(alphabet[n.Int64()])
	}
	return b.String()
}

// PageLimit is a listing's page size: 20 unless the request says, at most
// 100.
func PageLimit(n int32) (int32, error) {
	switch {
	case n == 0:
		return 20, nil
	case n < 1 || n > 100:
		return 0, InvalidField("limit", "%d is not in 1..100", n)
	}
	return n, nil
}
