package platform_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/services/platform"
)

// An upstream's API key goes only to the hosts its secret names; a secret
// that names none is refused, fail closed.
func TestBoundKey(t *testing.T) {
	s := platform.Secrets{"api_key": "sk-1", "hosts": "api.deepseek.com, 127.0.0.1:11434"}
	for _, c := range []struct {
		url, err string
	}{
		{"https://api.deepseek.com/v1", ""},
		{"https://API.DeepSeek.com:443/v1", ""}, // a host without a port allows any port
		{"http://127.0.0.1:11434/v1", ""},
		{"http://127.0.0.1:8080/v1", "is not one of them"}, // the port is part of the binding
		{"https://api.deepseek.com.evil.example/v1", "is not one of them"},
		{"not a url", "has no host"},
	} {
		key, err := platform.BoundKey(s, "secret/bulkhead/upstreams/x", "api_key", c.url)
		switch {
		case c.err == "" && (err != nil || key != "sk-1"):
			t.Errorf("%s: %q, %v", c.url, key, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err) || key != ""):
			t.Errorf("%s: %q, %v; want an error with %q", c.url, key, err, c.err)
		}
	}
	if _, err := platform.BoundKey(platform.Secrets{"api_key": "sk-1"}, "secret/bulkhead/upstreams/x", "api_key", "https://api.deepseek.com/v1"); err == nil ||
		!strings.Contains(err.Error(), `secret/bulkhead/upstreams/x has no "hosts"`) || strings.Contains(err.Error(), "sk-1") {
		t.Fatalf("a secret without hosts: %v", err)
	}
	if _, err := platform.BoundKey(s, "secret/bulkhead/upstreams/x", "token", "https://api.deepseek.com/v1"); err == nil || strings.Contains(err.Error(), "sk-1") {
		t.Fatalf("a missing key: %v", err)
	}
}
