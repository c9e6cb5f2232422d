package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
)

// The request body of POST /v1/chat/completions (fields the platform does
// not use, like logit_bias, are accepted and ignored, as the OpenAI SDKs
// send them).
type chatRequest struct {
	Model               string        `json:"model"`
	Messages            []wireMessage `json:"messages"`
	MaxCompletionTokens *int64        `json:"max_completion_tokens"`
	generation
	ResponseFormat *struct {
		Type string `json:"type"`
	} `json:"response_format"`
	Logprobs    *bool              `json:"logprobs"`
	TopLogprobs *int               `json:"top_logprobs"`
	LogitBias   map[string]float64 `json:"logit_bias"`
	Tools       []wireTool         `json:"tools"`
	ToolChoice  json.RawMessage    `json:"tool_choice"`
	// Cache opts a non-deterministic request into the response cache
	// (Bulkhead extension).
	Cache *bool `json:"cache"`
	// Thinking and ReasoningEffort are DeepSeek's thinking mode.
	Thinking *struct {
		Type string `json:"type"`
	} `json:"thinking"`
	ReasoningEffort *string `json:"reasoning_effort"`
}

// generation holds the fields chat and text completions share.
type generation struct {
	MaxTokens     *int64          `json:"max_tokens"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	Stop          json.RawMessage `json:"stop"`
	Seed          *int64          `json:"seed"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N                *int     `json:"n"`
	FrequencyPenalty *float64 `json:"frequency_penalty"`
	PresencePenalty  *float64 `json:"presence_penalty"`
	User             string   `json:"user"`
}

type wireMessage struct {
	Role             string          `json:"role"`
	Content          json.RawMessage `json:"content"`
	Name             string          `json:"name"`
	ToolCallID       string          `json:"tool_call_id"`
	ReasoningContent string          `json:"reasoning_content"`
	// Prefix on the last, assistant message: continue it (DeepSeek's chat
	// prefix completion).
	Prefix    bool           `json:"prefix"`
	ToolCalls []wireToolCall `json:"tool_calls"`
}

// wireTool is one of the request's tools.
type wireTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
		Strict      *bool           `json:"strict"`
	} `json:"function"`
}

// wireToolCall is a tool call in a message, or a piece of one in a
// stream's delta (Index set; the first piece of a call has its id, type
// and name, the later ones more of its arguments).
type wireToolCall struct {
	Index    *int             `json:"index,omitempty"`
	ID       string           `json:"id,omitempty"`
	Type     string           `json:"type,omitempty"`
	Function wireFunctionCall `json:"function"`
}

type wireFunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

var roles = map[string]inferencev1.Role{
	"system": inferencev1.Role_ROLE_SYSTEM, "user": inferencev1.Role_ROLE_USER,
	"assistant": inferencev1.Role_ROLE_ASSISTANT, "tool": inferencev1.Role_ROLE_TOOL,
}

// decode reads a JSON body: 413 when too large, 400 when not JSON, 422
// naming the field when a value has the wrong type.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) *apierr.Error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &apierr.Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large",
			Message: fmt.Sprintf("Request body larger than %d bytes", limit)}
	}
	if err != nil {
		return apierr.Malformed("Could not read the request body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			// encoding/json names an embedded struct's fields through it;
			// generation's are the body's own.
			field := strings.TrimPrefix(typeErr.Field, "generation.")
			return apierr.InvalidParam(field, fmt.Sprintf("%s: expected %s, got a JSON %s", field, typeErr.Type, typeErr.Value))
		}
		return apierr.Malformed("Failed to deserialize the JSON body into the target type: " + err.Error())
	}
	if dec.More() {
		return apierr.Malformed("Trailing data after the JSON body")
	}
	return nil
}

// content reads a message's content: a string, or an array of text parts.
func content(raw json.RawMessage, param string) (string, *apierr.Error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", apierr.InvalidParam(param, param+": must be a string or an array of text parts")
	}
	var b strings.Builder
	for i, p := range parts {
		if p.Type != "text" {
			return "", apierr.InvalidParam(fmt.Sprintf("%s[%d].type", param, i), fmt.Sprintf("content part type %q is not supported (text only)", p.Type))
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// stops reads stop: a string or up to 16 strings.
func stops(raw json.RawMessage) ([]string, *apierr.Error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, apierr.InvalidParam("stop", "stop: must be a string or an array of strings")
	}
	if len(many) > 16 {
		return nil, apierr.InvalidParam("stop", "stop: at most 16 sequences")
	}
	return many, nil
}

// The response objects.

type chatUsage struct {
	PromptTokens          int64 `json:"prompt_tokens"`
	CompletionTokens      int64 `json:"completion_tokens"`
	TotalTokens           int64 `json:"total_tokens"`
	PromptCacheHitTokens  int64 `json:"prompt_cache_hit_tokens"`
	PromptCacheMissTokens int64 `json:"prompt_cache_miss_tokens"`
	PromptTokensDetails   struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

type completionMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	// ReasoningContent is the chain of thought (thinking mode), null
	// otherwise, as DeepSeek sends it.
	ReasoningContent *string        `json:"reasoning_content"`
	ToolCalls        []wireToolCall `json:"tool_calls,omitempty"`
}

type completionChoice struct {
	Index        int               `json:"index"`
	Message      completionMessage `json:"message"`
	Logprobs     *wireLogprobs     `json:"logprobs"`
	FinishReason string            `json:"finish_reason"`
}

// wireLogprobs are a choice's log-probabilities (OpenAI's and DeepSeek's
// logprobs object): the answer's tokens in order.
type wireLogprobs struct {
	Content []wireLogprob `json:"content"`
}

type wireLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	// Bytes are the token's UTF-8 bytes, as a list of integers.
	Bytes       []int            `json:"bytes"`
	TopLogprobs []wireTopLogprob `json:"top_logprobs"`
}

type wireTopLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

func wireBytes(b []byte) []int {
	out := make([]int, len(b))
	for i, x := range b {
		out[i] = int(x)
	}
	return out
}

// wireLogprobsOf renders lps ([] when there are none, as the API writes
// an empty list).
func wireLogprobsOf(lps []*inferencev1.Logprob) []wireLogprob {
	out := []wireLogprob{}
	for _, lp := range lps {
		w := wireLogprob{Token: lp.GetToken(), Logprob: lp.GetLogprob(), Bytes: wireBytes(lp.GetBytes()), TopLogprobs: []wireTopLogprob{}}
		for _, t := range lp.GetTopLogprobs() {
			w.TopLogprobs = append(w.TopLogprobs, wireTopLogprob{Token: t.GetToken(), Logprob: t.GetLogprob(), Bytes: wireBytes(t.GetBytes())})
		}
		out = append(out, w)
	}
	return out
}

type chatCompletion struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	Choices           []completionChoice `json:"choices"`
	Usage             *chatUsage         `json:"usage"`
	SystemFingerprint string             `json:"system_fingerprint"`
}

type chunkDelta struct {
	Role             string         `json:"role,omitempty"`
	Content          *string        `json:"content,omitempty"`
	ReasoningContent *string        `json:"reasoning_content,omitempty"`
	ToolCalls        []wireToolCall `json:"tool_calls,omitempty"`
}

type chunkChoice struct {
	Index        int           `json:"index"`
	Delta        chunkDelta    `json:"delta"`
	Logprobs     *wireLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

type chatChunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint string        `json:"system_fingerprint"`
	Choices           []chunkChoice `json:"choices"`
	Usage             *chatUsage    `json:"usage"`
}

var finishNames = map[inferencev1.FinishReason]string{
	inferencev1.FinishReason_FINISH_REASON_STOP:                         "stop",
	inferencev1.FinishReason_FINISH_REASON_LENGTH:                       "length",
	inferencev1.FinishReason_FINISH_REASON_CONTENT_FILTER:               "content_filter",
	inferencev1.FinishReason_FINISH_REASON_TOOL_CALLS:                   "tool_calls",
	inferencev1.FinishReason_FINISH_REASON_INSUFFICIENT_SYSTEM_RESOURCE: "insufficient_system_resource",
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
