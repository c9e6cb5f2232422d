package e2e_test

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
	// cachedPrompt, when set, is the prompt_tokens_details.cached_tokens
	// (of its 5 prompt tokens) its usage reports, as OpenAI's and vLLM's do.
	cachedPrompt atomic.Int64

	calls    atomic.Int64 // chat completions
	mu       sync.Mutex
	prefixes []string
	// last is the body of the last chat completion it was sent.
	last []byte
}

// lastBody is the last chat completion request it was sent, decoded.
func (u *fakeUpstream) lastBody(t *testing.T) map[string]any {
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

// toolArguments are the arguments of the call the fake makes, sent in
// these pieces.
var toolArguments = []string{`{"city":`, ` "Par`, `is"}`}

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
		for _, piece := range toolArguments {
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
	for i := start; i < len(u.words); i++ {
		if body.Logprobs {
			// Asked for log-probabilities, it says each word is e^-0.25
			// likely, the most likely, before less likely alternatives.
			top := []map[string]any{}
			for k := range body.TopLogprobs {
				if k == 0 {
					top = append(top, map[string]any{"token": u.words[i], "logprob": -0.25, "bytes": utf8Bytes(u.words[i])})
					continue
				}
				top = append(top, map[string]any{"token": fmt.Sprintf(" alt%d", k), "logprob": -1 - float64(k), "bytes": nil})
			}
			lp, _ := json.Marshal(map[string]any{"content": []map[string]any{{"token": u.words[i], "logprob": -0.25, "bytes": utf8Bytes(u.words[i]), "top_logprobs": top}}})
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q},\"logprobs\":%s}]}\n\n", u.words[i], lp)
			w.(http.Flusher).Flush()
			continue
		}
		fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":%q}}]}\n\n", u.words[i])
		w.(http.Flusher).Flush()
		if mode == "cut" && !continuing && int64(i+1) == u.cutAfter.Load() {
			panic(http.ErrAbortHandler) // dies mid-stream
		}
	}
	// Its usage is honest: what it generated this call.
	fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":%d,\"prompt_tokens_details\":{\"cached_tokens\":%d}}}\n\ndata: [DONE]\n\n",
		tokens.Count(strings.Join(u.words[start:], "")), u.cachedPrompt.Load())
}
