// Package upstreamtest is an OpenAI-compatible upstream for tests, a real
// HTTP server in the test binary that can be made to fail: it streams its
// words, continues an assistant prefix, calls the first tool it is
// offered, answers a tool's result, reports log-probabilities and prompt
// cache hits when asked, and can refuse, die mid-stream or go away.
package upstreamtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

// Server is the upstream. Set Words, Key and CutAfter before the first
// request.
type Server struct {
	name string
	// Words are what it says, in pieces.
	Words []string
	srv   *httptest.Server

	// mode: see Set.
	mode     atomic.Value
	CutAfter atomic.Int64

	// Key, when set, is the API key it requires (401 otherwise).
	Key string
	// CachedPrompt, when set, is the prompt_tokens_details.cached_tokens
	// (of its 5 prompt tokens) its usage reports, as OpenAI's and vLLM's do.
	CachedPrompt atomic.Int64

	calls    atomic.Int64 // chat completions
	mu       sync.Mutex
	prefixes []string
	// last is the body of the last chat completion it was sent.
	last []byte
	// auths are the Authorization headers it was sent.
	auths map[string]bool
}

// SawAuthorization says whether a request to it (GET /models included)
// carried this Authorization header.
func (u *Server) SawAuthorization(h string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.auths[h]
}

// LastBody is the last chat completion request it was sent, decoded.
func (u *Server) LastBody(t testing.TB) map[string]any {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	var v map[string]any
	if err := json.Unmarshal(u.last, &v); err != nil {
		t.Fatalf("fake upstream's last request %q: %v", u.last, err)
	}
	return v
}

// utf8Bytes is s's bytes as the API writes them: a list of integers.
func utf8Bytes(s string) []int {
	out := []int{}
	for _, b := range []byte(s) {
		out = append(out, int(b))
	}
	return out
}

// ToolArguments are the arguments of the call the fake makes, sent in
// these pieces.
var ToolArguments = []string{`{"city":`, ` "Par`, `is"}`}

// New starts an upstream that says n words (" w0", " w1", ...); the
// name is the id of the tool calls it makes (call_NAME).
func New(t testing.TB, name string, n int) *Server {
	t.Helper()
	u := &Server{name: name}
	for i := range n {
		u.Words = append(u.Words, fmt.Sprintf(" w%d", i))
	}
	u.mode.Store("ok")
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

// URL is its base URL, ending before /chat/completions.
func (u *Server) URL() string { return u.srv.URL + "/v1" }

// Full is all it says.
func (u *Server) Full() string { return strings.Join(u.Words, "") }

// Set changes its mode: "ok", "fail" (500 on every call), "cut" (the
// stream dies after CutAfter chunks, or after a tool call's first piece;
// continuations are served), "down" (every call, GET /models included,
// fails).
func (u *Server) Set(m string) { u.mode.Store(m) }

// Calls counts the chat completions it was sent.
func (u *Server) Calls() int64 { return u.calls.Load() }

// Prefixes are the assistant prefixes it was asked to continue.
func (u *Server) Prefixes() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.prefixes...)
}

func (u *Server) modeNow() string { return u.mode.Load().(string) }

func (u *Server) serve(w http.ResponseWriter, r *http.Request) {
	mode := u.modeNow()
	if h := r.Header.Get("Authorization"); h != "" {
		u.mu.Lock()
		if u.auths == nil {
			u.auths = map[string]bool{}
		}
		u.auths[h] = true
		u.mu.Unlock()
	}
	if u.Key != "" && r.Header.Get("Authorization") != "Bearer "+u.Key {
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
		Tools []struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		} `json:"tools"`
		ToolChoice  json.RawMessage `json:"tool_choice"`
		Logprobs    bool            `json:"logprobs"`
		TopLogprobs int             `json:"top_logprobs"`
	}
	raw, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(raw, &body); err != nil || r.URL.Path != "/v1/chat/completions" || len(body.Messages) == 0 {
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	u.calls.Add(1)
	u.mu.Lock()
	u.last = raw
	u.mu.Unlock()
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
	last := body.Messages[len(body.Messages)-1]
	if len(body.Tools) > 0 && string(body.ToolChoice) != `"none"` && last.Role != "tool" {
		// It calls the first tool, its arguments in pieces as OpenAI
		// streams them; in mode "cut" it dies after the first piece.
		fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_%s\",\"type\":\"function\",\"function\":{\"name\":%q,\"arguments\":\"\"}}]}}]}\n\n",
			u.name, body.Tools[0].Function.Name)
		for _, piece := range ToolArguments {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":%q}}]}}]}\n\n", piece)
			w.(http.Flusher).Flush()
			if mode == "cut" {
				panic(http.ErrAbortHandler)
			}
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":11}}\n\ndata: [DONE]\n\n")
		return
	}
	if last.Role == "tool" {
		// It answers from the tool's result.
		fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":6}}\n\ndata: [DONE]\n\n",
			"The tool says: "+last.Content)
		return
	}
	for i := start; i < len(u.Words); i++ {
		if body.Logprobs {
			// Asked for log-probabilities, it says each word is e^-0.25
			// likely, the most likely, before less likely alternatives.
			top := []map[string]any{}
			for k := range body.TopLogprobs {
				if k == 0 {
					top = append(top, map[string]any{"token": u.Words[i], "logprob": -0.25, "bytes": utf8Bytes(u.Words[i])})
					continue
				}
				top = append(top, map[string]any{"token": fmt.Sprintf(" alt%d", k), "logprob": -1 - float64(k), "bytes": nil})
			}
			lp, _ := json.Marshal(map[string]any{"content": []map[string]any{{"token": u.Words[i], "logprob": -0.25, "bytes": utf8Bytes(u.Words[i]), "top_logprobs": top}}})
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q},\"logprobs\":%s}]}\n\n", u.Words[i], lp)
			w.(http.Flusher).Flush()
			continue
		}
		fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q}}]}\n\n", u.Words[i])
		w.(http.Flusher).Flush()
		if mode == "cut" && !continuing && int64(i+1) == u.CutAfter.Load() {
			panic(http.ErrAbortHandler) // dies mid-stream
		}
	}
	// Its usage is honest: what it generated this call.
	fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":%d,\"prompt_tokens_details\":{\"cached_tokens\":%d}}}\n\ndata: [DONE]\n\n",
		tokens.Count(strings.Join(u.Words[start:], "")), u.CachedPrompt.Load())
}
