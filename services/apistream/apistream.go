// Package apistream reads an OpenAI-compatible chat-completion stream
// (server-sent events: "data: {chunk}" lines, then "data: [DONE]"), as the
// builtin CLI and the openai inference engine consume it from this
// platform's API or any other.
package apistream

import (
	"bufio"
	"encoding/json"
	"io"
	"strings"
)

// Chunk is what a client reads of a chat.completion.chunk.
type Chunk struct {
	Choices []struct {
		Delta struct {
			Content          string     `json:"content"`
			ReasoningContent string     `json:"reasoning_content"`
			ToolCalls        []ToolCall `json:"tool_calls"`
		} `json:"delta"`
		// Logprobs holds the log-probabilities of the tokens of this
		// chunk's content, when asked for.
		Logprobs *Logprobs `json:"logprobs"`
		// Text is a text completion's piece (POST /completions).
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens         int64 `json:"prompt_tokens"`
		CompletionTokens     int64 `json:"completion_tokens"`
		PromptCacheHitTokens int64 `json:"prompt_cache_hit_tokens"`
		// PromptTokensDetails.CachedTokens: OpenAI's (and vLLM's) count of
		// the prompt's cache hits.
		PromptTokensDetails struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
		// CompletionTokensDetails.ReasoningTokens: DeepSeek's and OpenAI's
		// count of the chain of thought.
		CompletionTokensDetails struct {
			ReasoningTokens int64 `json:"reasoning_tokens"`
		} `json:"completion_tokens_details"`
	} `json:"usage"`
	// Error is an error event sent in the stream after it started.
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// ToolCall is a piece of a tool call in a stream: the first piece of a
// call has its id, type and function name, the later ones (same Index)
// more of its arguments.
type ToolCall struct {
	Index    int    `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// Logprobs are a choice's log-probabilities: a chat completion's
// (Content), or a text completion's (the other fields, one entry per
// token).
type Logprobs struct {
	Content       []Logprob            `json:"content"`
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
}

// Logprob is a token's log-probability, with the most likely tokens at
// its position (theirs without TopLogprobs).
type Logprob struct {
	Token       string    `json:"token"`
	Logprob     float64   `json:"logprob"`
	Bytes       []int     `json:"bytes"`
	TopLogprobs []Logprob `json:"top_logprobs"`
}

// MalformedError is a chunk that is not JSON.
type MalformedError struct{ Err error }

func (e *MalformedError) Error() string { return "malformed chunk: " + e.Err.Error() }
func (e *MalformedError) Unwrap() error { return e.Err }

// Read calls fn with each chunk until "data: [DONE]" (done true), the end
// of r (done false: the stream was cut), an error reading r, a malformed
// chunk (*MalformedError) or fn's error. Comments (": keep-alive") and blank
// separators are skipped.
func Read(r io.Reader, fn func(*Chunk) error) (done bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			return true, nil
		}
		var c Chunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return false, &MalformedError{Err: err}
		}
		if err := fn(&c); err != nil {
			return false, err
		}
	}
	return false, sc.Err()
}
