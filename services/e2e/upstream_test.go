package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

// fakeUpstream is an independent OpenAI-compatible server in the test
// binary, so that it can be made to fail: it streams its words, continues an
// assistant prefix (prefix: true) with the rest of them, answers GET
// /v1/models, and can be made to refuse, to die after some chunks, or to
// go away.
type fakeUpstream struct {
	name  string
	words []string
	srv   *httptest.Server

	// mode: "ok", "fail" (500 on every call), "cut" (the stream dies after
	// cutAfter chunks; continuations are served), "down" (every call,
	// GET /models included, fails).
	mode     atomic.Value
	cutAfter atomic.Int64

	// key, when set, is the API key it requires (401 otherwise).
	key string

	calls    atomic.Int64 // chat completions
	mu       sync.Mutex
	prefixes []string
}

func newFakeUpstream(t *testing.T, name string, n int) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{name: name}
	for i := range n {
		u.words = append(u.words, fmt.Sprintf(" w%d", i))
	}
	u.mode.Store("ok")
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *fakeUpstream) url() string     { return u.srv.URL + "/v1" }
func (u *fakeUpstream) full() string    { return strings.Join(u.words, "") }
func (u *fakeUpstream) set(m string)    { u.mode.Store(m) }
func (u *fakeUpstream) count() int64    { return u.calls.Load() }
func (u *fakeUpstream) modeNow() string { return u.mode.Load().(string) }

func (u *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	mode := u.modeNow()
	if u.key != "" && r.Header.Get("Authorization") != "Bearer "+u.key {
		http.Error(w, `{"error":{"message":"invalid API key"}}`, http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/v1/models" {
		if mode == "down" {
			http.Error(w, `{"error":{"message":"down"}}`, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"object":"list","data":[{"id":"up","object":"model"}]}`)
		return
	}
	var body struct {
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
			Prefix  bool   `json:"prefix"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.URL.Path != "/v1/chat/completions" || len(body.Messages) == 0 {
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	u.calls.Add(1)
	if mode == "fail" || mode == "down" {
		http.Error(w, `{"error":{"message":"upstream failure"}}`, http.StatusInternalServerError)
		return
	}
	start := 0
	continuing := false
	if last := body.Messages[len(body.Messages)-1]; last.Role == "assistant" && last.Prefix {
		continuing = true
		u.mu.Lock()
		u.prefixes = append(u.prefixes, last.Content)
		u.mu.Unlock()
		// The prefix may be another upstream's words: continue after as
		// many words as it holds.
		start = len(strings.Fields(last.Content))
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for i := start; i < len(u.words); i++ {
		fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q}}]}\n\n", u.words[i])
		w.(http.Flusher).Flush()
		if mode == "cut" && !continuing && int64(i+1) == u.cutAfter.Load() {
			panic(http.ErrAbortHandler) // dies mid-stream
		}
	}
	// Its usage is honest: what it generated this call.
	fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":%d}}\n\ndata: [DONE]\n\n",
		tokens.Count(strings.Join(u.words[start:], "")))
}
