package webhooks

import (
	"context"
	"encoding/base64"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification signs as it says.
func TestSignAsTheSpecification(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	ts := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body); got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	if err := Verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,bogus "+want, body, ts.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"other body":   Verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", want, []byte(`{"test": 1}`), ts, 5*time.Minute),
		"other id":     Verify(secret, "msg_other", "1614265330", want, body, ts, 5*time.Minute),
		"too old":      Verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", want, body, ts.Add(time.Hour), 5*time.Minute),
		"other secret": Verify("whsec_"+base64.StdEncoding.EncodeToString([]byte("another key")), "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", want, body, ts, 5*time.Minute),
	} {
		if err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

// Secrets are sealed to their endpoint.
func TestSealer(t *testing.T) {
	s, err := newSealer("0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	key, secret := newSecret()
	if !strings.HasPrefix(secret, SecretPrefix) || len(key) != 24 {
		t.Fatalf("secret %q", secret)
	}
	sealed := s.seal(key, "we_1")
	if strings.Contains(string(sealed), string(key)) {
		t.Fatal("the key is in the sealed form")
	}
	if got, err := s.open(sealed, "we_1"); err != nil || string(got) != string(key) {
		t.Fatalf("open: %v", err)
	}
	if _, err := s.open(sealed, "we_2"); err == nil {
		t.Fatal("a secret opened for another endpoint")
	}
}

// Loopback, link-local, private and reserved addresses are refused unless
// allowed; public ones pass; a URL names the field's problem.
func TestGuard(t *testing.T) {
	g, err := newGuard([]string{"127.0.0.1/32", "10.9.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, kind := range map[string]string{
		"127.0.0.2": "loopback", "::1": "loopback", "169.254.169.254": "link-local", "fe80::1": "link-local",
		"10.1.2.3": "private", "192.168.1.1": "private", "172.16.0.1": "private", "fd00::1": "private",
		"0.0.0.0": "unspecified", "100.64.0.1": "reserved", "::ffff:192.168.1.1": "private", "239.1.1.1": "multicast",
	} {
		err := g.check(netip.MustParseAddr(addr))
		if err == nil || !strings.Contains(err.Error(), "a "+kind+" address") {
			t.Errorf("%s: %v, want refused as %s", addr, err, kind)
		}
	}
	for _, addr := range []string{"127.0.0.1", "10.9.3.4", "93.184.216.34", "2606:4700::1111"} {
		if err := g.check(netip.MustParseAddr(addr)); err != nil {
			t.Errorf("%s refused: %v", addr, err)
		}
	}
	ctx := context.Background()
	for raw, want := range map[string]string{
		"ftp://example.com/x":         "scheme",
		"http://user:pw@127.0.0.1/":   "credentials",
		"http:///x":                   "no host",
		"http://[fe80::1]/":           "link-local",
		"http://localhost.invalid./x": "does not resolve",
	} {
		if err := g.checkURL(ctx, raw, net.DefaultResolver); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", raw, err, want)
		}
	}
	if err := g.control("tcp", "192.168.0.1:443", nil); err == nil {
		t.Error("dialling a private address was allowed")
	}
	if _, err := newGuard([]string{"not-a-cidr"}); err == nil {
		t.Error("a bad allowed network was accepted")
	}
}
