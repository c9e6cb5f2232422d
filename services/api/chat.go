package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	"github.com/bulkhead-mesh/bulkhead/services/identity"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	chatv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/chat/v1"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
)

// CacheHeader says what the response cache did with a request.
const CacheHeader = "X-Bulkhead-Cache"

// toComplete validates the request body and builds the chat call.
func toComplete(body *chatRequest, requestID string) (*chatv1.CompleteRequest, *apierr.Error) {
	if body.Model == "" {
		return nil, apierr.InvalidParam("model", "model: is required")
	}
	if len(body.Messages) == 0 {
		return nil, apierr.InvalidParam("messages", "messages: at least one message is required")
	}
	req := &chatv1.CompleteRequest{Model: body.Model, User: body.User, RequestId: requestID, Stream: body.Stream, Sampling: &inferencev1.Sampling{}}
	for i, m := range body.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		role, ok := roles[m.Role]
		if !ok {
			return nil, apierr.InvalidParam(param+".role", fmt.Sprintf("%s.role: %q is not one of system, user, assistant, tool", param, m.Role))
		}
		text, aerr := content(m.Content, param+".content")
		if aerr != nil {
			return nil, aerr
		}
		if m.Prefix && (role != inferencev1.Role_ROLE_ASSISTANT || i != len(body.Messages)-1) {
			return nil, apierr.InvalidParam(param+".prefix", param+".prefix: only the last message, an assistant's, may be a prefix to continue")
		}
		msg := &inferencev1.Message{Role: role, Content: text, Name: m.Name, ToolCallId: m.ToolCallID, ReasoningContent: m.ReasoningContent, Prefix: m.Prefix}
		for _, tc := range m.ToolCalls {
			msg.ToolCalls = append(msg.ToolCalls, &inferencev1.ToolCall{Id: tc.ID, Type: tc.Type, FunctionName: tc.Function.Name, FunctionArguments: tc.Function.Arguments})
		}
		req.Messages = append(req.Messages, msg)
	}
	s := req.Sampling
	maxTokens := body.MaxTokens
	if maxTokens == nil {
		maxTokens = body.MaxCompletionTokens
	}
	if maxTokens != nil {
		if *maxTokens < 1 || *maxTokens > 1<<30 {
			return nil, apierr.InvalidParam("max_tokens", "max_tokens: must be a positive integer")
		}
		s.MaxTokens = proto.Int32(int32(*maxTokens))
	}
	if t := body.Temperature; t != nil {
		if *t < 0 || *t > 2 {
			return nil, apierr.InvalidParam("temperature", "temperature: must be in [0, 2]")
		}
		s.Temperature = t
	}
	if p := body.TopP; p != nil {
		if *p <= 0 || *p > 1 {
			return nil, apierr.InvalidParam("top_p", "top_p: must be in (0, 1]")
		}
		s.TopP = p
	}
	for name, v := range map[string]*float64{"frequency_penalty": body.FrequencyPenalty, "presence_penalty": body.PresencePenalty} {
		if v != nil && (*v < -2 || *v > 2) {
			return nil, apierr.InvalidParam(name, name+": must be in [-2, 2]")
		}
	}
	s.FrequencyPenalty, s.PresencePenalty = body.FrequencyPenalty, body.PresencePenalty
	s.Logprobs = body.Logprobs != nil && *body.Logprobs
	if k := body.TopLogprobs; k != nil {
		// Bounded here so that it fits int32; chat checks the rest.
		if *k < 0 || *k > 20 {
			return nil, apierr.InvalidParam("top_logprobs", "top_logprobs: must be an integer in [0, 20]")
		}
		s.TopLogprobs = int32(*k)
	}
	if aerr := unsupported(body); aerr != nil {
		return nil, aerr
	}
	if body.N != nil && *body.N != 1 {
		return nil, apierr.InvalidParam("n", "n: only 1 is supported")
	}
	if body.StreamOptions != nil && !body.Stream {
		return nil, apierr.InvalidParam("stream_options", "stream_options: only allowed when stream is true")
	}
	st, aerr := stops(body.Stop)
	if aerr != nil {
		return nil, aerr
	}
	s.Stop = st
	s.Seed = body.Seed
	if rf := body.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text":
			s.ResponseFormat = inferencev1.ResponseFormat_RESPONSE_FORMAT_TEXT
		case "json_object":
			s.ResponseFormat = inferencev1.ResponseFormat_RESPONSE_FORMAT_JSON_OBJECT
		default:
			return nil, apierr.InvalidParam("response_format.type", fmt.Sprintf("response_format.type: %q is not text or json_object", rf.Type))
		}
	}
	if aerr := thinking(body, s); aerr != nil {
		return nil, aerr
	}
	if aerr := tools(body, req); aerr != nil {
		return nil, aerr
	}
	req.CacheOptIn = body.Cache != nil && *body.Cache
	return req, nil
}

// unsupported refuses the fields that would change the reply but that no
// engine here honours yet: a 422 naming the field, never a silent
// difference. Fields that change nothing (an empty logit_bias) are
// accepted.
func unsupported(body *chatRequest) *apierr.Error {
	switch {
	case len(body.LogitBias) > 0:
		return apierr.InvalidParam("logit_bias", "logit_bias: not supported")
	}
	return nil
}

var toolModes = map[string]inferencev1.ToolChoice_Mode{
	"none": inferencev1.ToolChoice_MODE_NONE, "auto": inferencev1.ToolChoice_MODE_AUTO, "required": inferencev1.ToolChoice_MODE_REQUIRED,
}

// tools reads tools and tool_choice (chat judges them against each other,
// the conversation and the model).
func tools(body *chatRequest, req *chatv1.CompleteRequest) *apierr.Error {
	for _, t := range body.Tools {
		tool := &inferencev1.Tool{Type: t.Type, Name: t.Function.Name, Description: t.Function.Description, Strict: t.Function.Strict}
		if p := t.Function.Parameters; len(p) > 0 && string(p) != "null" {
			tool.ParametersJson = string(p)
		}
		req.Tools = append(req.Tools, tool)
	}
	raw := body.ToolChoice
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var mode string
	if json.Unmarshal(raw, &mode) == nil {
		m, ok := toolModes[mode]
		if !ok {
			return apierr.InvalidParam("tool_choice", fmt.Sprintf("tool_choice: %q is not none, auto, required or a function", mode))
		}
		req.ToolChoice = &inferencev1.ToolChoice{Mode: m}
		return nil
	}
	var named struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(raw, &named) != nil || named.Type != "function" {
		return apierr.InvalidParam("tool_choice", `tool_choice: must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}`)
	}
	req.ToolChoice = &inferencev1.ToolChoice{Mode: inferencev1.ToolChoice_MODE_FUNCTION, FunctionName: named.Function.Name}
	return nil
}

// efforts maps reasoning_effort as DeepSeek does.
var efforts = map[string]inferencev1.ReasoningEffort{
	"minimal": inferencev1.ReasoningEffort_REASONING_EFFORT_LOW, "low": inferencev1.ReasoningEffort_REASONING_EFFORT_LOW,
	"medium": inferencev1.ReasoningEffort_REASONING_EFFORT_HIGH, "high": inferencev1.ReasoningEffort_REASONING_EFFORT_HIGH,
	"xhigh": inferencev1.ReasoningEffort_REASONING_EFFORT_HIGH,
	"max":   inferencev1.ReasoningEffort_REASONING_EFFORT_MAX, "ultra": inferencev1.ReasoningEffort_REASONING_EFFORT_MAX,
}

// thinking reads DeepSeek's thinking mode: thinking.type enabled or
// disabled (unset: the model's default), and reasoning_effort.
func thinking(body *chatRequest, s *inferencev1.Sampling) *apierr.Error {
	if t := body.Thinking; t != nil {
		switch t.Type {
		case "enabled":
			s.Thinking = proto.Bool(true)
		case "disabled":
			s.Thinking = proto.Bool(false)
		default:
			return apierr.InvalidParam("thinking.type", fmt.Sprintf("thinking.type: %q is not enabled or disabled", t.Type))
		}
	}
	if e := body.ReasoningEffort; e != nil {
		v, ok := efforts[*e]
		if !ok {
			return apierr.InvalidParam("reasoning_effort", fmt.Sprintf("reasoning_effort: %q is not one of minimal, low, medium, high, xhigh, max, ultra", *e))
		}
		s.ReasoningEffort = v
	}
	return nil
}

func (s *server) chatCompletions(w http.ResponseWriter, r *http.Request, c caller) {
	var body chatRequest
	if aerr := decode(w, r, s.o.MaxBodyBytes, &body); aerr != nil {
		aerr.Write(w)
		return
	}
	req, aerr := toComplete(&body, platform.RequestID(r.Context()))
	if aerr != nil {
		aerr.Write(w)
		return
	}
	stream, started, ok := s.complete(w, r, c, req)
	if !ok {
		return
	}
	if body.Stream {
		base := chatChunk{ID: started.GetId(), Object: "chat.completion.chunk", Created: started.GetCreated(), Model: started.GetModel(), SystemFingerprint: started.GetSystemFingerprint()}
		s.writeStream(w, r, stream, chatChunks{base}, body.StreamOptions != nil && body.StreamOptions.IncludeUsage)
		return
	}
	out := chatCompletion{ID: started.GetId(), Object: "chat.completion", Created: started.GetCreated(), Model: started.GetModel(), SystemFingerprint: started.GetSystemFingerprint()}
	rep, ok := collect(w, stream)
	if !ok {
		return
	}
	msg := completionMessage{Role: "assistant", Content: rep.content.String(), ToolCalls: rep.calls}
	if rep.reasoning.Len() > 0 {
		r := rep.reasoning.String()
		msg.ReasoningContent = &r
	}
	finish := ""
	if rep.finish != nil {
		finish = *rep.finish
	}
	out.Usage = rep.usage
	if rep.model != "" {
		out.Model = rep.model
	}
	out.Choices = []completionChoice{{Message: msg, FinishReason: finish}}
	if req.GetSampling().GetLogprobs() {
		out.Choices[0].Logprobs = &wireLogprobs{Content: wireLogprobsOf(rep.logprobs)}
	}
	writeJSON(w, http.StatusOK, out)
}

// reply is a whole completion read from chat's stream, for a client that
// does not stream.
type reply struct {
	content, reasoning strings.Builder
	calls              []wireToolCall
	logprobs           []*inferencev1.Logprob
	// model is the model that served when a fallback took over (a
	// Started after the first); "" otherwise.
	model string
	// finish is nil when the stream carried no Finished.
	finish *string
	usage  *chatUsage
}

// addCalls assembles tool calls from their pieces: a new index starts a
// call, a known one gets more of its name and arguments.
func (r *reply) addCalls(pieces []*inferencev1.ToolCall) {
	for _, p := range pieces {
		i := int(p.GetIndex())
		for len(r.calls) <= i {
			r.calls = append(r.calls, wireToolCall{Type: "function"})
		}
		c := &r.calls[i]
		if p.GetId() != "" {
			c.ID = p.GetId()
		}
		if p.GetType() != "" {
			c.Type = p.GetType()
		}
		c.Function.Name += p.GetFunctionName()
		c.Function.Arguments += p.GetFunctionArguments()
	}
}

// collect reads the rest of chat's stream. An error after the start is
// still the request's HTTP error (written here, ok false): nothing was
// sent yet.
func collect(w http.ResponseWriter, stream chatv1.ChatService_CompleteClient) (*reply, bool) {
	rep := &reply{}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return rep, true
		}
		if err != nil {
			apierr.FromGRPC(err).Write(w)
			return nil, false
		}
		switch e := ev.Event.(type) {
		case *chatv1.CompleteResponse_Started_:
			rep.model = e.Started.GetModel()
		case *chatv1.CompleteResponse_Delta_:
			rep.content.WriteString(e.Delta.GetContent())
			rep.reasoning.WriteString(e.Delta.GetReasoningContent())
			rep.addCalls(e.Delta.GetToolCalls())
			rep.logprobs = append(rep.logprobs, e.Delta.GetLogprobs()...)
		case *chatv1.CompleteResponse_Finished_:
			f := finishNames[e.Finished.GetFinishReason()]
			rep.finish = &f
		case *chatv1.CompleteResponse_Usage:
			rep.usage = wireUsage(e.Usage)
		}
	}
}

// complete calls chat and reads the first event, which says whether the
// request was admitted: errors before it are HTTP errors (written here,
// ok false), after it they are in the stream.
func (s *server) complete(w http.ResponseWriter, r *http.Request, c caller, req *chatv1.CompleteRequest) (chatv1.ChatService_CompleteClient, *chatv1.CompleteResponse_Started, bool) {
	// The request's context ends when the client goes away: the call to
	// chat is cancelled with it, and so is the generation upstream.
	ctx := metadata.AppendToOutgoingContext(r.Context(), identity.Header, c.token)
	stream, err := s.chat.Complete(ctx, req)
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return nil, nil, false
	}
	first, err := stream.Recv()
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return nil, nil, false
	}
	started := first.GetStarted()
	if started == nil {
		apierr.Internal("chat stream did not start").Write(w)
		return nil, nil, false
	}
	if c := started.GetCache(); c != "" {
		// Whether the response cache answered (hit) or will keep the
		// reply (miss); absent when the request is not deterministic.
		w.Header().Set(CacheHeader, c)
	}
	return stream, started, true
}

func wireUsage(u *chatv1.Usage) *chatUsage {
	out := &chatUsage{
		PromptTokens: u.GetPromptTokens(), CompletionTokens: u.GetCompletionTokens(), TotalTokens: u.GetTotalTokens(),
		PromptCacheHitTokens: u.GetPromptCacheHitTokens(), PromptCacheMissTokens: u.GetPromptCacheMissTokens(),
	}
	out.PromptTokensDetails.CachedTokens = u.GetPromptCacheHitTokens()
	out.CompletionTokensDetails.ReasoningTokens = u.GetReasoningTokens()
	return out
}

// chunkShape renders the events of a stream as the chunks of one API
// object (chat.completion.chunk, text_completion); nil skips an event.
type chunkShape interface {
	first() any
	// served is the shape of the chunks after a fallback to another
	// model (a Started after the first).
	served(model string) chunkShape
	delta(*chatv1.CompleteResponse_Delta) any
	finish(reason string) any
	usage(*chatv1.Usage) any
}

// chatChunks is the chat.completion.chunk shape.
type chatChunks struct{ base chatChunk }

func (c chatChunks) served(model string) chunkShape {
	c.base.Model = model
	return c
}

func (c chatChunks) first() any {
	empty := ""
	f := c.base
	f.Choices = []chunkChoice{{Delta: chunkDelta{Role: "assistant", Content: &empty}}}
	return f
}

func (c chatChunks) delta(e *chatv1.CompleteResponse_Delta) any {
	d := chunkDelta{}
	if r := e.GetReasoningContent(); r != "" {
		d.ReasoningContent = &r
	}
	for _, tc := range e.GetToolCalls() {
		i := int(tc.GetIndex())
		d.ToolCalls = append(d.ToolCalls, wireToolCall{Index: &i, ID: tc.GetId(), Type: tc.GetType(),
			Function: wireFunctionCall{Name: tc.GetFunctionName(), Arguments: tc.GetFunctionArguments()}})
	}
	if piece := e.GetContent(); piece != "" || (d.ReasoningContent == nil && d.ToolCalls == nil) {
		d.Content = &piece
	}
	out := c.base
	out.Choices = []chunkChoice{{Delta: d}}
	if lps := e.GetLogprobs(); len(lps) > 0 {
		out.Choices[0].Logprobs = &wireLogprobs{Content: wireLogprobsOf(lps)}
	}
	return out
}

func (c chatChunks) finish(reason string) any {
	out := c.base
	out.Choices = []chunkChoice{{Delta: chunkDelta{}, FinishReason: &reason}}
	return out
}

func (c chatChunks) usage(u *chatv1.Usage) any {
	out := c.base
	out.Choices = []chunkChoice{}
	out.Usage = wireUsage(u)
	return out
}

// writeStream writes the SSE stream exactly as DeepSeek does: a first
// chunk (the role, for chat), content chunks, a chunk with the finish
// reason, the usage chunk (choices: []) when asked, then data: [DONE];
// and a ": keep-alive" comment whenever the stream has been silent too
// long.
func (s *server) writeStream(w http.ResponseWriter, r *http.Request, stream chatv1.ChatService_CompleteClient, shape chunkShape, includeUsage bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	rc := http.NewResponseController(w)

	events := make(chan *chatv1.CompleteResponse)
	errc := make(chan error, 1)
	go func() {
		defer close(events)
		for {
			ev, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case events <- ev:
			case <-r.Context().Done():
				errc <- r.Context().Err()
				return
			}
		}
	}()

	write := func(payload string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(w, payload); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	chunk := func(c any) bool {
		b, _ := json.Marshal(c)
		return write("data: " + string(b) + "\n\n")
	}
	if f := shape.first(); f != nil && !chunk(f) {
		return
	}
	keepAlive := time.NewTimer(s.o.KeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepAlive.C:
			if !write(": keep-alive\n\n") {
				return
			}
			keepAlive.Reset(s.o.KeepAlive)
		case ev, ok := <-events:
			if !ok {
				err := <-errc
				if errors.Is(err, io.EOF) {
					write("data: [DONE]\n\n")
					return
				}
				if r.Context().Err() != nil {
					return
				}
				// An error after the stream started: the OpenAI SDKs raise
				// it from an error event.
				write("data: " + string(apierr.FromGRPC(err).Body()) + "\n\n")
				return
			}
			var c any
			switch e := ev.Event.(type) {
			case *chatv1.CompleteResponse_Started_:
				shape = shape.served(e.Started.GetModel())
				continue
			case *chatv1.CompleteResponse_Delta_:
				c = shape.delta(e.Delta)
			case *chatv1.CompleteResponse_Finished_:
				c = shape.finish(finishNames[e.Finished.GetFinishReason()])
			case *chatv1.CompleteResponse_Usage:
				if !includeUsage {
					continue
				}
				c = shape.usage(e.Usage)
			default:
				continue
			}
			if c == nil {
				continue
			}
			if !chunk(c) {
				return
			}
			keepAlive.Reset(s.o.KeepAlive)
		}
	}
}
