// Package benchpeers measures the platform as users deploy it side by side
// with a peer gateway (make bench-peers): a zero-latency OpenAI-compatible
// upstream, the same open-loop load (vegeta) against the upstream
// directly, Portkey's gateway in front of it, and Bulkhead (`bulkhead up`,
// one process per service, mTLS) serving a model whose backend is it; per
// target and rate the latency added over direct, errors, the CPU of every
// process of the target per 1,000 requests and its resident memory.
package benchpeers

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Reply is what the upstream answers, whatever it is asked.
const Reply = "The light of the harbour is seven violet lanterns."

// UpstreamHandler is a zero-latency OpenAI-compatible server: GET
// /v1/models, POST /v1/chat/completions (JSON, or SSE with "stream": true,
// the reply in three chunks and a usage chunk).
func UpstreamHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[{"id":"bench","object":"model","created":0,"owned_by":"bench"}]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":{"message":"not JSON","type":"invalid_request_error"}}`, http.StatusBadRequest)
			return
		}
		now := time.Now().Unix()
		usage := `{"prompt_tokens":12,"completion_tokens":11,"total_tokens":23}`
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"chatcmpl-bench","object":"chat.completion","created":%d,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":%s}`,
				now, req.Model, Reply, usage)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f, _ := w.(http.Flusher)
		chunk := func(delta, finish string, u string) {
			fin := "null"
			if finish != "" {
				fin = `"` + finish + `"`
			}
			choices := fmt.Sprintf(`[{"index":0,"delta":%s,"finish_reason":%s}]`, delta, fin)
			if u != "" {
				choices = "[]"
			}
			fmt.Fprintf(w, "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":%d,\"model\":%q,\"choices\":%s%s}\n\n", now, req.Model, choices,
				map[bool]string{true: `,"usage":` + u, false: ""}[u != ""])
			if f != nil {
				f.Flush()
			}
		}
		words := strings.SplitAfterN(Reply, " ", 3)
		chunk(fmt.Sprintf(`{"role":"assistant","content":%q}`, words[0]), "", "")
		for _, p := range words[1:] {
			chunk(fmt.Sprintf(`{"content":%q}`, p), "", "")
		}
		chunk(`{}`, "stop", "")
		chunk("", "", usage)
		fmt.Fprint(w, "data: [DONE]\n\n")
	})
	return mux
}

// ServeUpstream serves UpstreamHandler on addr until the process ends.
func ServeUpstream(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("upstream listening on http://%s/v1\n", lis.Addr())
	return (&http.Server{Handler: UpstreamHandler(), ReadHeaderTimeout: 5 * time.Second}).Serve(lis)
}
