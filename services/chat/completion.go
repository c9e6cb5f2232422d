package chat

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
	chatv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/chat/v1"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

// MaxContinuations bounds how many times one reply is continued after its
// generation died mid-stream.
const MaxContinuations = 3

// completion is one admitted request on its way.
type completion struct {
	s      *server
	ctx    context.Context
	stream chatv1.ChatService_CompleteServer
	id     *authv1.Identity
	// model serves the request; asked is the model resolved first, whose
	// terms were reserved (they differ after a fallback).
	model, asked *modelsv1.Model
	admitted     *admission
	started      *chatv1.CompleteResponse_Started
	// failed are the models whose generation failed before anything was
	// sent.
	failed      []string
	requestID   string
	reservation string
	startedAt   time.Time
	prompt      int64
	req         *chatv1.CompleteRequest

	// What was sent of the reply, piece by piece: the answer, the chain
	// of thought and the tool calls.
	pieces, thoughts []string
	calls            []*inferencev1.ToolCall
}

func (t *completion) send(ev *chatv1.CompleteResponse) error { return t.stream.Send(ev) }

func (t *completion) delta(d *chatv1.CompleteResponse_Delta) error {
	if r := d.GetReasoningContent(); r != "" {
		t.thoughts = append(t.thoughts, r)
	}
	if c := d.GetContent(); c != "" {
		t.pieces = append(t.pieces, c)
	}
	t.calls = append(t.calls, d.GetToolCalls()...)
	return t.send(&chatv1.CompleteResponse{Event: &chatv1.CompleteResponse_Delta_{Delta: d}})
}

// sent says whether any of the reply reached the client.
func (t *completion) sent() bool { return len(t.pieces) > 0 || len(t.thoughts) > 0 || len(t.calls) > 0 }

// text and thought are what was sent of the answer and of the chain of
// thought; called, the tool calls' names and arguments.
func (t *completion) text() string    { return strings.Join(t.pieces, "") }
func (t *completion) thought() string { return strings.Join(t.thoughts, "") }
func (t *completion) called() string {
	var b strings.Builder
	for _, c := range t.calls {
		b.WriteString(c.GetFunctionName() + c.GetFunctionArguments())
	}
	return b.String()
}

// replay answers from the cache: the same pieces, the prompt counted as
// cache hit.
func (t *completion) replay(hit *cachedResponse) error {
	u := &usage{hit: t.prompt, completion: hit.CompletionTokens, reasoning: hit.ReasoningTokens}
	for _, p := range hit.Reasoning {
		if err := t.delta(&chatv1.CompleteResponse_Delta{ReasoningContent: p}); err != nil {
			t.settle(u, 0)
			return err
		}
	}
	for _, p := range hit.Pieces {
		if err := t.delta(&chatv1.CompleteResponse_Delta{Content: p}); err != nil {
			t.settle(u, 0)
			return err
		}
	}
	for _, c := range hit.Calls {
		call := &inferencev1.ToolCall{Index: c.Index, Id: c.ID, Type: c.Type, FunctionName: c.Name, FunctionArguments: c.Arguments}
		if err := t.delta(&chatv1.CompleteResponse_Delta{ToolCalls: []*inferencev1.ToolCall{call}}); err != nil {
			t.settle(u, 0)
			return err
		}
	}
	return t.finish(inferencev1.FinishReason(hit.Finish), u)
}

// generate streams the reply from inference. When the stream breaks after
// its first piece (the replica or upstream behind it died), the reply is
// continued on another replica from exactly what was sent, so the client
// sees one stream: the builtin engine regenerates deterministically (chat
// fixes the seed for that) and skips the sent part; OpenAI-compatible
// upstreams continue an assistant prefix. The reply is billed once, when
// it finishes.
func (t *completion) generate(sampling *inferencev1.Sampling, cacheKey string) error {
	conv := conversationID(t.id.AccountId, t.req.GetMessages())
	ctx := metadata.AppendToOutgoingContext(t.ctx, ConversationHeader, conv)
	sampling = seeded(sampling)
	req := t.generateRequest(sampling)
	for attempt := 0; ; {
		fin, err := t.stream1(ctx, req)
		if err == nil {
			// The engine's cache hits are billed at the cache-hit price.
			hit := min(t.prompt, fin.GetUsage().GetCachedPromptTokens())
			u := &usage{hit: hit, miss: t.prompt - hit, completion: fin.GetUsage().GetCompletionTokens(), reasoning: fin.GetUsage().GetReasoningTokens()}
			if err := t.finish(fin.GetFinishReason(), u); err != nil {
				return err
			}
			if cacheKey != "" {
				entry := &cachedResponse{Pieces: t.pieces, Reasoning: t.thoughts, Finish: int32(fin.GetFinishReason()),
					CompletionTokens: u.completion, ReasoningTokens: u.reasoning}
				for _, c := range t.calls {
					entry.Calls = append(entry.Calls, cachedCall{Index: c.GetIndex(), ID: c.GetId(), Type: c.GetType(), Name: c.GetFunctionName(), Arguments: c.GetFunctionArguments()})
				}
				if err := t.s.cache.put(context.WithoutCancel(t.ctx), cacheKey, entry, CacheTTL[sampling.GetResponseFormat()]); err != nil {
					t.s.log.WarnContext(t.ctx, "response cache write", "error", err)
				}
			}
			return nil
		}
		if t.ctx.Err() != nil {
			// The client went away (and the generation with it): bill what
			// was served.
			t.settle(t.served(), 0)
			return status.FromContextError(t.ctx.Err()).Err()
		}
		if !t.sent() {
			if next := t.fallback(err); next != nil {
				// Another model serves; its reply is not cached under
				// the key of the one asked.
				sampling, cacheKey = seeded(next.sampling), ""
				req = t.generateRequest(sampling)
				continue
			}
			t.settle(nil, 0)
			return err
		}
		// A tool call cannot be continued from a text prefix: the client
		// gets the error.
		if attempt < MaxContinuations && continuable(err) && len(t.calls) == 0 {
			attempt++
			t.s.continued.Add(t.ctx, 1, metric.WithAttributes(attribute.String("model", t.model.GetName()), attribute.String("code", status.Code(err).String())))
			t.s.log.WarnContext(t.ctx, "generation broke mid-stream; continuing it", "error", err, "attempt", attempt, "request_id", t.requestID)
			req.Continuation = &inferencev1.Continuation{ReasoningContent: t.thought(), Content: t.text()}
			continue
		}
		if capacity(err) && len(t.calls) == 0 {
			// Nothing left to continue on: DeepSeek's answer for a
			// generation the system could not finish.
			return t.finish(inferencev1.FinishReason_FINISH_REASON_INSUFFICIENT_SYSTEM_RESOURCE, t.served())
		}
		t.settle(t.served(), 0)
		return err
	}
}

// generateRequest is the inference call for the model that serves.
func (t *completion) generateRequest(sampling *inferencev1.Sampling) *inferencev1.GenerateRequest {
	return &inferencev1.GenerateRequest{
		Engine: t.model.GetEngine(), Model: t.model.GetEngineModel(), Messages: t.req.GetMessages(),
		Sampling: sampling, RequestId: t.requestID, Buffered: !t.req.GetStream(), Suffix: t.req.Suffix,
		Upstreams: t.model.GetUpstreams(), PassiveHealth: t.model.GetPassiveHealth(),
		Tools: t.req.GetTools(), ToolChoice: t.req.GetToolChoice(),
		// An account's cached prefixes are its own.
		CacheScope: t.id.AccountId,
	}
}

// seeded fixes a seed, so that a continuation regenerates exactly.
func seeded(s *inferencev1.Sampling) *inferencev1.Sampling {
	if s.Seed != nil {
		return s
	}
	s = proto.CloneOf(s)
	s.Seed = proto.Int64(rand.Int64())
	return s
}

// fallback moves the request down the fallback chain of the model asked
// when the serving model's generation failed before anything was sent
// (its replicas or upstreams are out, not the request at fault), without
// waiting for the models service to see the model down: the next model
// that admits the request on the same terms (max_tokens, thinking on or
// off) within what was reserved serves it, announced by a new Started.
// nil: none.
func (t *completion) fallback(err error) *admission {
	if c := status.Code(err); c != codes.Unavailable && c != codes.ResourceExhausted {
		return nil
	}
	t.failed = append(t.failed, t.model.GetName())
	res, rerr := t.s.models.Resolve(t.ctx, &modelsv1.ResolveRequest{Name: t.req.GetModel(), AccountId: t.id.AccountId, Exclude: t.failed})
	if rerr != nil {
		return nil
	}
	m := res.GetModel()
	// The same terms: the sampling as the model asked settled it
	// (max_tokens, thinking on or off).
	a, aerr := admit(t.req, t.admitted.sampling, m, t.prompt)
	if aerr != nil || a.tokens > t.admitted.tokens {
		t.s.log.WarnContext(t.ctx, "generation failed; the next model of the fallback chain cannot take the request", "model", t.model.GetName(), "fallback", m.GetName(), "error", aerr, "request_id", t.requestID)
		return nil
	}
	started := proto.CloneOf(t.started)
	started.Model, started.SystemFingerprint, started.Cache = m.GetName(), fingerprint(m), ""
	if t.send(&chatv1.CompleteResponse{Event: &chatv1.CompleteResponse_Started_{Started: started}}) != nil {
		return nil
	}
	t.s.fallbacks.Add(t.ctx, 1, metric.WithAttributes(attribute.String("model", t.model.GetName()), attribute.String("fallback", m.GetName()),
		attribute.String("code", status.Code(err).String())))
	t.s.log.WarnContext(t.ctx, "generation failed before anything was sent; the fallback model serves", "model", t.model.GetName(), "fallback", m.GetName(), "error", err, "request_id", t.requestID)
	t.model = m
	return a
}

// stream1 runs one Generate call, passing its pieces on, until Finished.
func (t *completion) stream1(ctx context.Context, req *inferencev1.GenerateRequest) (*inferencev1.GenerateResponse_Finished, error) {
	gen, err := t.s.inference.Generate(ctx, req)
	if err != nil {
		return nil, err
	}
	for {
		r, err := gen.Recv()
		if errors.Is(err, io.EOF) {
			// A stream that ends without Finished was cut upstream.
			return nil, status.Error(codes.Unavailable, "the generation ended early")
		}
		if err != nil {
			return nil, err
		}
		switch e := r.Event.(type) {
		case *inferencev1.GenerateResponse_Delta_:
			d := e.Delta
			if err := t.delta(&chatv1.CompleteResponse_Delta{Content: d.GetContent(), ReasoningContent: d.GetReasoningContent(),
				ToolCalls: d.GetToolCalls(), Logprobs: d.GetLogprobs()}); err != nil {
				return nil, err
			}
		case *inferencev1.GenerateResponse_Finished_:
			return e.Finished, nil
		}
	}
}

// continuable says whether a broken generation is worth continuing
// elsewhere: the replica or upstream failed, not the request.
func continuable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.Unknown, codes.Internal:
		return true
	}
	return false
}

// capacity says whether an error means the system ran out of capacity.
func capacity(err error) bool {
	c := status.Code(err)
	return c == codes.Unavailable || c == codes.ResourceExhausted
}

// served is the usage of what was streamed so far (for a stream that
// did not finish).
func (t *completion) served() *usage {
	if !t.sent() {
		return nil
	}
	r := int64(tokens.Count(t.thought()))
	return &usage{miss: t.prompt, completion: r + int64(tokens.Count(t.text())+tokens.Count(t.called())), reasoning: r}
}

func (t *completion) finish(reason inferencev1.FinishReason, u *usage) error {
	if err := t.send(&chatv1.CompleteResponse{Event: &chatv1.CompleteResponse_Finished_{Finished: &chatv1.CompleteResponse_Finished{FinishReason: reason}}}); err != nil {
		t.settle(u, reason)
		return err
	}
	t.settle(u, reason)
	return t.send(&chatv1.CompleteResponse{Event: &chatv1.CompleteResponse_Usage{Usage: &chatv1.Usage{
		PromptTokens: u.hit + u.miss, CompletionTokens: u.completion, TotalTokens: u.hit + u.miss + u.completion,
		PromptCacheHitTokens: u.hit, PromptCacheMissTokens: u.miss, ReasoningTokens: u.reasoning,
	}}})
}

// cost prices the usage: at the serving model's prices, or the asked
// model's when a fallback costs more, so that a fallback never costs more
// than what was asked for (nor than was reserved).
func (t *completion) cost(u *usage) int64 {
	return min(cost(t.model, u.hit, u.miss, u.completion), cost(t.asked, u.hit, u.miss, u.completion))
}

// usage counts a reply's tokens; completion includes reasoning.
type usage struct{ hit, miss, completion, reasoning int64 }

// settle commits the usage (or refunds a reservation that served nothing)
// whatever happened to the client: billing never depends on the client
// staying connected. The conversation turn is recorded in the background.
func (t *completion) settle(u *usage, reason inferencev1.FinishReason) {
	ctx := context.WithoutCancel(t.ctx)
	outcome := "ok"
	if u == nil {
		outcome = "refunded"
		if _, err := t.s.users.Refund(ctx, &usersv1.RefundRequest{ReservationId: t.reservation}); err != nil {
			t.s.log.WarnContext(ctx, "refund", "error", err, "reservation", t.reservation)
		}
		t.s.count(ctx, t.model, outcome)
		return
	}
	if t.ctx.Err() != nil {
		outcome = "client_gone"
	}
	// The event first: it is what bills the request, and it survives this
	// process and Kafka's absence. The commit then frees the reservation.
	if err := t.record(u, reason, outcome); err != nil {
		t.s.log.ErrorContext(ctx, "usage event not recorded", "error", err, "request_id", t.requestID)
	}
	_, err := t.s.users.Commit(ctx, &usersv1.CommitRequest{
		ReservationId: t.reservation, RequestId: t.requestID, Model: t.model.GetName(),
		Usage: &usersv1.Usage{
			PromptTokens: u.hit + u.miss, CompletionTokens: u.completion, TotalTokens: u.hit + u.miss + u.completion,
			PromptCacheHitTokens: u.hit, PromptCacheMissTokens: u.miss, CostMicros: t.cost(u),
			Requests: 1,
		},
	})
	if err != nil {
		// The usage is in its event; the reservation holds its quota until
		// it expires.
		t.s.log.ErrorContext(ctx, "reservation not settled", "error", err, "reservation", t.reservation)
	}
	t.s.count(ctx, t.model, outcome)
	msgs := t.req.GetMessages()
	last := msgs[len(msgs)-1]
	t.s.recorder.add(turn{
		conversation: conversationID(t.id.AccountId, msgs), account: t.id.AccountId, model: t.model.GetName(), requestID: t.requestID,
		userRole: strings.ToLower(strings.TrimPrefix(last.GetRole().String(), "ROLE_")), userContent: last.GetContent(),
		reply: t.text(), finish: reason.String(),
	})
}
