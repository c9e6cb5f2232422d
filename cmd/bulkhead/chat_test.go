package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
)

func TestChatCommand(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{})
	keyFile := filepath.Join(t.TempDir(), "key")
	writeFile(t, keyFile, p.Key+"\n")

	var out, errOut strings.Builder
	if code := run([]string{"chat", "--api", p.APIURL, "--key-file", keyFile, "--max-tokens", "15", "--thinking", "disabled", "What", "is", "light?"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	// 15 tokens budgeted piece by piece; the reply's own count may be lower
	// (BPE merges across pieces).
	m := regexp.MustCompile(`; (\d+) completion tokens, 0 of them reasoning\)`).FindStringSubmatch(errOut.String())
	if len(strings.Fields(out.String())) < 3 || m == nil || m[1] == "0" || len(m[1]) > 2 || (len(m[1]) == 2 && m[1] > "15") {
		t.Fatalf("stdout %q, stderr %q", out.String(), errOut.String())
	}
	// The default model thinks: the chain of thought goes to stderr, the
	// answer alone to stdout.
	out.Reset()
	errOut.Reset()
	if code := run([]string{"chat", "--api", p.APIURL, "--key-file", keyFile, "--max-tokens", "400", "What", "is", "light?"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	// (The same prompt again: the replica's prefix cache may hold it.)
	m = regexp.MustCompile(`(?s)^(.+)\n\(\d+ prompt tokens, \d+ from cache; \d+ completion tokens, ([1-9]\d*) of them reasoning\)\n$`).FindStringSubmatch(errOut.String())
	if m == nil || len(strings.Fields(m[1])) < 10 || len(strings.Fields(out.String())) < 3 || strings.Contains(out.String(), strings.TrimSpace(m[1])) {
		t.Fatalf("thinking: stdout %q, stderr %q", out.String(), errOut.String())
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"chat", "--api", p.APIURL, "--key-file", keyFile}, 2, "say something"},
		{[]string{"chat", "--api", p.APIURL, "--key-file", filepath.Join(t.TempDir(), "none"), "hi"}, 1, "is `make run` running?"},
		{[]string{"chat", "--api", p.APIURL, "--key-file", keyFile, "--temperature", "5", "hi"}, 1, "422 Unprocessable Entity: temperature: must be in [0, 2]"},
		{[]string{"chat", "--api", p.APIURL, "--key-file", keyFile, "--thinking", "maybe", "hi"}, 2, `-thinking "maybe": must be enabled or disabled`},
	} {
		var out, errOut strings.Builder
		if code := run(c.args, &out, &errOut); code != c.code || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errOut.String(), c.code, c.want)
		}
	}
	t.Setenv("BULKHEAD_API_KEY", "sk-wrong")
	errOut.Reset()
	if code := run([]string{"chat", "--api", p.APIURL, "hi"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "401 Unauthorized: Authentication Fails") {
		t.Errorf("wrong key: exit %d, %q", code, errOut.String())
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// `translate -o bootstrap` renders what envoy --mode validate checks in CI:
// the real policies' gateway, as a bootstrap that passes ValidateAll.
func TestTranslateBootstrap(t *testing.T) {
	var out, errOut strings.Builder
	if code := run([]string{"translate", "-f", filepath.Join("..", "..", "policies", "mesh"), "--node", "gateway/default/ai", "-o", "bootstrap"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"staticResources:", "envoy.filters.http.ext_authz", "clusterName: xds_cluster", "auth.default:9000"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bootstrap has no %q", want)
		}
	}
}
