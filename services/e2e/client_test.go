package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
)

// response is one HTTP answer of the API.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("status %d, body not JSON (%v): %s", r.status, err, r.body)
	}
	return v
}

// errorOf checks the OpenAI error shape and returns its fields.
func (r response) errorOf(t *testing.T) (message, typ, code string, param any) {
	t.Helper()
	v := r.json(t)
	e, ok := v["error"].(map[string]any)
	if !ok || len(e) != 4 {
		t.Fatalf("status %d: not the OpenAI error shape: %s", r.status, r.body)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e[k]; !ok {
			t.Fatalf("error without %q: %s", k, r.body)
		}
	}
	message, _ = e["message"].(string)
	typ, _ = e["type"].(string)
	code, _ = e["code"].(string)
	if message == "" || typ == "" || code == "" {
		t.Fatalf("empty error fields: %s", r.body)
	}
	if r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("error content type %q", r.header.Get("Content-Type"))
	}
	return message, typ, code, e["param"]
}

// request builds an API request with the key as bearer token; body is
// sent as is when a string, else as JSON.
func request(t *testing.T, ctx context.Context, method, url, key string, body any) *http.Request {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

func do(t *testing.T, ctx context.Context, method, url, key string, body any) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(request(t, ctx, method, url, key, body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// sse is a parsed event stream.
type sse struct {
	status   int
	header   http.Header
	data     []string // the data: payloads, in order ([DONE] included)
	comments int      // ": keep-alive" lines
}

func stream(t *testing.T, ctx context.Context, url, key string, body any) sse {
	t.Helper()
	resp, err := http.DefaultClient.Do(request(t, ctx, "POST", url, key, body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := sse{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		out.data = []string{string(b)}
		return out
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "data: "):
			out.data = append(out.data, strings.TrimPrefix(line, "data: "))
		case strings.HasPrefix(line, ": keep-alive"):
			out.comments++
		case line == "":
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	return out
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func jsonContains(body []byte, s string) bool { return bytes.Contains(body, []byte(s)) }

func accountRequest(name string) *usersv1.CreateAccountRequest {
	return &usersv1.CreateAccountRequest{Name: name, Tier: "standard", BalanceMicros: 100_000_000}
}
