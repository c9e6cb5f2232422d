package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	"github.com/bulkhead-mesh/bulkhead/services/apistream"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

// OpenAI is the engine of an OpenAI-compatible upstream (vLLM, llama.cpp,
// Ollama, DeepSeek, or another Bulkhead): POST {BaseURL}/chat/completions
// with stream=true, its deltas passed through as they come.
type OpenAI struct {
	// BaseURL ends before /chat/completions, e.g. http://127.0.0.1:11434/v1.
	BaseURL string
	// APIKey is sent as a bearer token when set (from Vault); KeySource
	// says where it came from, for the error of a refused key.
	APIKey    string
	KeySource string
	Client    *http.Client
	// FirstByte bounds the wait for the reply's headers, Idle the wait
	// between two reads of its stream (0: no bound but the caller's
	// deadline). Either one expiring is UNAVAILABLE.
	FirstByte, Idle time.Duration
}

// errStalled is the cause of an upstream call cut by FirstByte or Idle.
type errStalled struct {
	what string
	d    time.Duration
}

func (e *errStalled) Error() string {
	return fmt.Sprintf("upstream sent nothing for %s (%s)", e.d, e.what)
}

// watchdog cancels the call when the upstream stalls: FirstByte until
// the headers, then Idle between reads of the body.
type watchdog struct {
	cancel func(error)
	idle   time.Duration
	timer  *time.Timer
}

func newWatchdog(cancel func(error), firstByte, idle time.Duration) *watchdog {
	w := &watchdog{cancel: cancel, idle: idle}
	if firstByte > 0 {
		w.timer = time.AfterFunc(firstByte, func() { cancel(&errStalled{"timeouts.firstToken", firstByte}) })
	}
	return w
}

// body wraps the reply's body so that each read restarts the Idle clock.
func (w *watchdog) body(r io.Reader) io.Reader {
	w.stop()
	if w.idle <= 0 {
		w.timer = nil
		return r
	}
	d := w.idle
	w.timer = time.AfterFunc(d, func() { w.cancel(&errStalled{"timeouts.idle", d}) })
	return readerFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		w.timer.Reset(d)
		return n, err
	})
}

func (w *watchdog) stop() {
	if w.timer != nil {
		w.timer.Stop()
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

var roleNames = map[inferencev1.Role]string{
	inferencev1.Role_ROLE_SYSTEM: "system", inferencev1.Role_ROLE_USER: "user",
	inferencev1.Role_ROLE_ASSISTANT: "assistant", inferencev1.Role_ROLE_TOOL: "tool",
}

type upstreamMessage struct {
	Role string `json:"role"`
	// Content is null only on an assistant message that made tool calls
	// and said nothing, as OpenAI's API writes it.
	Content          *string `json:"content"`
	Name             string  `json:"name,omitempty"`
	ToolCallID       string  `json:"tool_call_id,omitempty"`
	ReasoningContent string  `json:"reasoning_content,omitempty"`
	// Prefix asks the upstream to continue this (last, assistant) message:
	// DeepSeek's chat prefix completion; llama.cpp's server and Ollama
	// continue a trailing assistant message by themselves.
	Prefix    bool               `json:"prefix,omitempty"`
	ToolCalls []upstreamToolCall `json:"tool_calls,omitempty"`
}

type upstreamFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
	// Arguments is set in a message's tool call, never in a tool.
	Arguments *string `json:"arguments,omitempty"`
}

type upstreamToolCall struct {
	ID       string           `json:"id"`
	Type     string           `json:"type"`
	Function upstreamFunction `json:"function"`
}

type upstreamTool struct {
	Type     string           `json:"type"`
	Function upstreamFunction `json:"function"`
}

// message writes a conversation's message as an upstream reads it.
func message(m *inferencev1.Message) upstreamMessage {
	content := m.GetContent()
	out := upstreamMessage{Role: roleNames[m.GetRole()], Content: &content, Name: m.GetName(),
		ToolCallID: m.GetToolCallId(), ReasoningContent: m.GetReasoningContent(), Prefix: m.GetPrefix()}
	for _, tc := range m.GetToolCalls() {
		args := tc.GetFunctionArguments()
		out.ToolCalls = append(out.ToolCalls, upstreamToolCall{ID: tc.GetId(), Type: "function", Function: upstreamFunction{Name: tc.GetFunctionName(), Arguments: &args}})
	}
	if content == "" && len(out.ToolCalls) > 0 {
		out.Content = nil
	}
	return out
}

// toolChoice writes tool_choice as OpenAI's and DeepSeek's APIs read it
// (nil: unset, the upstream's default, auto).
func toolChoice(c *inferencev1.ToolChoice) any {
	switch c.GetMode() {
	case inferencev1.ToolChoice_MODE_NONE:
		return "none"
	case inferencev1.ToolChoice_MODE_AUTO:
		return "auto"
	case inferencev1.ToolChoice_MODE_REQUIRED:
		return "required"
	case inferencev1.ToolChoice_MODE_FUNCTION:
		return map[string]any{"type": "function", "function": map[string]string{"name": c.GetFunctionName()}}
	}
	return nil
}

type upstreamRequest struct {
	Model    string            `json:"model"`
	Messages []upstreamMessage `json:"messages,omitempty"`
	// Prompt and Suffix make a fill-in-the-middle text completion.
	Prompt           string            `json:"prompt,omitempty"`
	Suffix           *string           `json:"suffix,omitempty"`
	Stream           bool              `json:"stream"`
	StreamOptions    map[string]bool   `json:"stream_options"`
	MaxTokens        *int32            `json:"max_tokens,omitempty"`
	Temperature      *float64          `json:"temperature,omitempty"`
	TopP             *float64          `json:"top_p,omitempty"`
	Stop             []string          `json:"stop,omitempty"`
	Seed             *int64            `json:"seed,omitempty"`
	FrequencyPenalty *float64          `json:"frequency_penalty,omitempty"`
	PresencePenalty  *float64          `json:"presence_penalty,omitempty"`
	ResponseFormat   map[string]string `json:"response_format,omitempty"`
	// Thinking and ReasoningEffort are DeepSeek's; sent only when thinking
	// is asked for, so upstreams without the fields never see them.
	Thinking        map[string]string `json:"thinking,omitempty"`
	ReasoningEffort string            `json:"reasoning_effort,omitempty"`
	Tools           []upstreamTool    `json:"tools,omitempty"`
	ToolChoice      any               `json:"tool_choice,omitempty"`
	// Logprobs is true for a chat completion (with TopLogprobs), the
	// number of alternatives for a text completion.
	Logprobs    any    `json:"logprobs,omitempty"`
	TopLogprobs *int32 `json:"top_logprobs,omitempty"`
}

var effortNames = map[inferencev1.ReasoningEffort]string{
	inferencev1.ReasoningEffort_REASONING_EFFORT_LOW:  "low",
	inferencev1.ReasoningEffort_REASONING_EFFORT_HIGH: "high",
	inferencev1.ReasoningEffort_REASONING_EFFORT_MAX:  "max",
}

var finishReasons = map[string]inferencev1.FinishReason{
	"stop":                         inferencev1.FinishReason_FINISH_REASON_STOP,
	"length":                       inferencev1.FinishReason_FINISH_REASON_LENGTH,
	"content_filter":               inferencev1.FinishReason_FINISH_REASON_CONTENT_FILTER,
	"tool_calls":                   inferencev1.FinishReason_FINISH_REASON_TOOL_CALLS,
	"insufficient_system_resource": inferencev1.FinishReason_FINISH_REASON_INSUFFICIENT_SYSTEM_RESOURCE,
}

// Generate implements Engine.
func (o *OpenAI) Generate(ctx context.Context, req Request, emit func(Piece) error) (Result, error) {
	s := req.Sampling
	body := upstreamRequest{
		Model: req.Model, Stream: true, StreamOptions: map[string]bool{"include_usage": true},
		MaxTokens: s.MaxTokens, Temperature: s.Temperature, TopP: s.TopP, Stop: s.GetStop(), Seed: s.Seed,
		FrequencyPenalty: s.FrequencyPenalty, PresencePenalty: s.PresencePenalty,
	}
	if s.GetResponseFormat() == inferencev1.ResponseFormat_RESPONSE_FORMAT_JSON_OBJECT {
		body.ResponseFormat = map[string]string{"type": "json_object"}
	}
	if s.GetLogprobs() {
		body.Logprobs = true
		if k := s.GetTopLogprobs(); k > 0 {
			body.TopLogprobs = &k
		}
	}
	if s.GetThinking() {
		body.Thinking = map[string]string{"type": "enabled"}
		body.ReasoningEffort = effortNames[s.GetReasoningEffort()]
	}
	path := "/chat/completions"
	if req.Suffix != nil {
		// FIM: a text completion of the raw prompt (DeepSeek's beta API).
		path = "/completions"
		body.Prompt, body.Suffix = req.Messages[0].GetContent(), req.Suffix
		if s.GetLogprobs() {
			body.Logprobs, body.TopLogprobs = s.GetTopLogprobs(), nil
		}
	} else {
		for _, m := range req.Messages {
			body.Messages = append(body.Messages, message(m))
		}
		for _, t := range req.Tools {
			f := upstreamFunction{Name: t.GetName(), Description: t.GetDescription(), Strict: t.Strict}
			if p := t.GetParametersJson(); p != "" {
				f.Parameters = json.RawMessage(p)
			}
			body.Tools = append(body.Tools, upstreamTool{Type: "function", Function: f})
		}
		if len(req.Tools) > 0 {
			body.ToolChoice = toolChoice(req.ToolChoice)
		}
	}
	// A continuation is the assistant's unfinished message, to be continued
	// by the upstream within what is left of the budget.
	var sentReasoning, sentContent string
	if c := req.Continuation; c != nil && (c.GetContent() != "" || c.GetReasoningContent() != "") {
		sentReasoning, sentContent = c.GetReasoningContent(), c.GetContent()
		if req.Suffix != nil {
			// FIM continues the prompt with what was sent.
			body.Prompt += sentContent
		} else {
			body.Messages = append(body.Messages, upstreamMessage{Role: "assistant", Content: &sentContent, ReasoningContent: sentReasoning, Prefix: true})
		}
		if body.MaxTokens != nil {
			left := *body.MaxTokens - int32(tokens.Count(sentReasoning)+tokens.Count(sentContent))
			if left < 1 {
				return Result{}, status.Error(codes.FailedPrecondition, "continuation: the text already sent used the whole max_tokens")
			}
			body.MaxTokens = &left
		}
	}
	b, _ := json.Marshal(body)
	parent := ctx
	ctx, cancelCause := context.WithCancelCause(ctx)
	defer cancelCause(nil)
	wd := newWatchdog(cancelCause, o.FirstByte, o.Idle)
	defer wd.stop()
	// stalled is the error of a call the watchdog cut, nil otherwise.
	stalled := func() error {
		var st *errStalled
		if parent.Err() == nil && errors.As(context.Cause(ctx), &st) {
			return status.Errorf(codes.Unavailable, "openai engine: %v", st)
		}
		return nil
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(o.BaseURL, "/")+path, bytes.NewReader(b))
	if err != nil {
		return Result{}, status.Errorf(codes.FailedPrecondition, "openai engine: base url: %v", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "text/event-stream")
	if o.APIKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(hreq)
	if err != nil {
		if err := stalled(); err != nil {
			return Result{}, err
		}
		if parent.Err() != nil {
			return Result{}, parent.Err()
		}
		return Result{}, status.Errorf(codes.Unavailable, "openai engine: upstream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Result{}, o.upstreamError(resp)
	}
	reply := wd.body(resp.Body)

	// calls holds the tool calls' names and arguments, for the usage an
	// upstream did not report.
	var text, thought, calls strings.Builder
	text.WriteString(sentContent)
	thought.WriteString(sentReasoning)
	res := Result{Finish: inferencev1.FinishReason_FINISH_REASON_STOP}
	var usageSeen bool
	callSeen := map[int]bool{}
	// stop is an error event from upstream or the caller's own failure to
	// take a piece: returned as it is.
	var stop error
	_, err = apistream.Read(reply, func(c *apistream.Chunk) error {
		if c.Error != nil {
			stop = status.Errorf(codes.Unavailable, "openai engine: upstream error: %s", c.Error.Message)
			return stop
		}
		for _, ch := range c.Choices {
			if r := ch.Delta.ReasoningContent; r != "" {
				thought.WriteString(r)
				if stop = emit(Piece{Reasoning: r}); stop != nil {
					return stop
				}
			}
			if piece := ch.Delta.Content + ch.Text; piece != "" || ch.Logprobs != nil && len(ch.Logprobs.Content) > 0 {
				text.WriteString(piece)
				if stop = emit(Piece{Content: piece, Logprobs: upstreamLogprobs(ch.Logprobs)}); stop != nil {
					return stop
				}
			}
			if tcs := ch.Delta.ToolCalls; len(tcs) > 0 {
				piece := Piece{}
				for _, tc := range tcs {
					if tc.Index < 0 || tc.Index >= maxToolCalls {
						stop = status.Errorf(codes.Unavailable, "openai engine: malformed chunk from upstream: tool call index %d is not in [0, %d)", tc.Index, maxToolCalls)
						return stop
					}
					if !callSeen[tc.Index] {
						// A call's first piece names it; an upstream that
						// gives no id gets one, since clients answer by it.
						callSeen[tc.Index] = true
						if tc.ID == "" {
							tc.ID = fmt.Sprintf("call_%s_%d", req.ID, tc.Index)
						}
						if tc.Type == "" {
							tc.Type = "function"
						}
					}
					calls.WriteString(tc.Function.Name + tc.Function.Arguments)
					piece.ToolCalls = append(piece.ToolCalls, &inferencev1.ToolCall{Index: int32(tc.Index), Id: tc.ID, Type: tc.Type,
						FunctionName: tc.Function.Name, FunctionArguments: tc.Function.Arguments})
				}
				if stop = emit(piece); stop != nil {
					return stop
				}
			}
			if ch.FinishReason != nil {
				if f, ok := finishReasons[*ch.FinishReason]; ok {
					res.Finish = f
				}
			}
		}
		if c.Usage != nil {
			usageSeen = true
			res.PromptTokens, res.CompletionTokens = c.Usage.PromptTokens, c.Usage.CompletionTokens
			res.ReasoningTokens = c.Usage.CompletionTokensDetails.ReasoningTokens
			res.CachedPromptTokens = max(c.Usage.PromptCacheHitTokens, c.Usage.PromptTokensDetails.CachedTokens)
		}
		return nil
	})
	cut := stalled()
	var malformed *apistream.MalformedError
	switch {
	case stop != nil:
		err = stop
	case errors.As(err, &malformed):
		err = status.Errorf(codes.Unavailable, "openai engine: malformed chunk from upstream: %v", malformed.Err)
	case err != nil && cut != nil:
		err = cut
	case err != nil && parent.Err() != nil:
		err = parent.Err()
	case err != nil:
		err = status.Errorf(codes.Unavailable, "openai engine: upstream stream: %v", err)
	}
	res = o.usage(res, req, thought.String(), text.String()+calls.String(), usageSeen)
	if err == nil && s.GetResponseFormat() == inferencev1.ResponseFormat_RESPONSE_FORMAT_JSON_OBJECT && req.Suffix == nil &&
		res.Finish != inferencev1.FinishReason_FINISH_REASON_TOOL_CALLS {
		err = checkJSONObject(text.String(), res.Finish, s.GetMaxTokens())
	}
	return res, err
}

// upstreamLogprobs converts a chunk's log-probabilities (nil when it
// has none).
func upstreamLogprobs(l *apistream.Logprobs) []*inferencev1.Logprob {
	if l == nil {
		return nil
	}
	var conv func(apistream.Logprob) *inferencev1.Logprob
	conv = func(x apistream.Logprob) *inferencev1.Logprob {
		lp := &inferencev1.Logprob{Token: x.Token, Logprob: x.Logprob}
		if x.Bytes != nil {
			lp.Bytes = make([]byte, len(x.Bytes))
			for i, b := range x.Bytes {
				lp.Bytes[i] = byte(b)
			}
		} else {
			lp.Bytes = []byte(x.Token)
		}
		for _, t := range x.TopLogprobs {
			lp.TopLogprobs = append(lp.TopLogprobs, conv(t))
		}
		return lp
	}
	var out []*inferencev1.Logprob
	for _, x := range l.Content {
		out = append(out, conv(x))
	}
	for i, tok := range l.Tokens {
		x := apistream.Logprob{Token: tok}
		if i < len(l.TokenLogprobs) {
			x.Logprob = l.TokenLogprobs[i]
		}
		if i < len(l.TopLogprobs) {
			for t, v := range l.TopLogprobs[i] {
				x.TopLogprobs = append(x.TopLogprobs, apistream.Logprob{Token: t, Logprob: v})
			}
			// A map has no order: most likely first, then by token.
			sort.Slice(x.TopLogprobs, func(a, b int) bool {
				pa, pb := x.TopLogprobs[a], x.TopLogprobs[b]
				return pa.Logprob > pb.Logprob || pa.Logprob == pb.Logprob && pa.Token < pb.Token
			})
		}
		out = append(out, conv(x))
	}
	return out
}

// checkJSONObject holds an upstream to response_format json_object: its
// whole reply must be one JSON object, or the client gets an error that
// says why (the text streamed so far cannot be taken back), never a
// silent "JSON mode" that is not JSON.
func checkJSONObject(reply string, finish inferencev1.FinishReason, maxTokens int32) error {
	if finish == inferencev1.FinishReason_FINISH_REASON_LENGTH {
		return platform.InvalidField("max_tokens", "the upstream's JSON object was cut at max_tokens (%d) before it ended; raise max_tokens", maxTokens)
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(reply)), &obj); err != nil {
		return platform.InvalidField("response_format", "json_object: the upstream model's reply is not a JSON object (%v); as DeepSeek advises, ask for JSON in the prompt and give an example of the object", err)
	}
	return nil
}

// usage fills the usage from our tokenizer when the upstream did not
// report it (older servers, or a stream cut short), or when the reply was
// a continuation: the upstream then counted the sent part as prompt, but
// the client is billed for one uninterrupted reply.
func (o *OpenAI) usage(res Result, req Request, thought, text string, usageSeen bool) Result {
	// The upstream's cache hits, in its tokens, become the same share of
	// the prompt as we count it.
	if hit, prompt := res.CachedPromptTokens, res.PromptTokens; hit > 0 && prompt > 0 {
		res.CachedPromptTokens = min(req.PromptTokens, req.PromptTokens*min(hit, prompt)/prompt)
	} else {
		res.CachedPromptTokens = 0
	}
	if !usageSeen || req.Continuation != nil {
		res.PromptTokens = req.PromptTokens
		res.ReasoningTokens = int64(tokens.Count(thought))
		res.CompletionTokens = res.ReasoningTokens + int64(tokens.Count(text))
	}
	return res
}

// maxToolCalls bounds the tool calls of one reply.
const maxToolCalls = 128

// reasonKeyRefused marks the error of an upstream that refused its API
// key (401, 403): the key read from Vault is stale or wrong.
const reasonKeyRefused = "UPSTREAM_KEY_REFUSED"

// upstreamError maps an upstream HTTP error to the gRPC code that carries
// the same meaning to the client.
func (o *OpenAI) upstreamError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := apierr.MessageOf(b)
	text := fmt.Sprintf("openai engine: upstream answered %d: %s", resp.StatusCode, msg)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return status.Error(codes.ResourceExhausted, text)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		// Our configuration, not the caller's request, is wrong.
		src := o.KeySource
		if src == "" {
			src = "openai_api_key in the inference secret in Vault"
		}
		return platform.Reason(codes.Internal, reasonKeyRefused, 0, text+" (check "+src+")")
	case resp.StatusCode >= 500:
		return status.Error(codes.Unavailable, text)
	default:
		return status.Error(codes.InvalidArgument, text)
	}
}
