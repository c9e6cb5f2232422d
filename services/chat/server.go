// Package chat orchestrates a chat completion (DESIGN.md §3): it verifies
// the caller's identity token, resolves the model, reserves quota with
// users, answers deterministic requests from the tenant's response cache
// or else streams the generation from inference, then commits the real
// usage (also when the client went away mid-stream), caches the response
// and records the conversation.
package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-mesh/bulkhead/services/identity"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
	chatv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/chat/v1"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

// ConversationHeader keys the inference load balancer's ring hash
// (policies/mesh: BackendPolicy inference), keeping a conversation on one
// engine while it is healthy.
const ConversationHeader = "x-bulkhead-conversation"

// Options are chat's own settings.
type Options struct{}

// Flags registers the options.
func (o *Options) Flags(*flag.FlagSet) {}

type server struct {
	chatv1.UnimplementedChatServiceServer
	verifier  *identity.Verifier
	users     usersv1.UsersServiceClient
	models    modelsv1.ModelsServiceClient
	inference inferencev1.InferenceServiceClient
	cache     *responseCache
	recorder  *recorder
	log       interface {
		WarnContext(context.Context, string, ...any)
		ErrorContext(context.Context, string, ...any)
	}

	requests metric.Int64Counter
	cacheUse metric.Int64Counter
}

var _ chatv1.ChatServiceServer = (*server)(nil)

// Setup wires the service.
func Setup(*Options) platform.Setup {
	return func(ctx context.Context, rt *platform.Runtime) error {
		db, err := rt.Postgres(ctx, migrations)
		if err != nil {
			return err
		}
		rdb, err := rt.Redis(ctx)
		if err != nil {
			return err
		}
		s := &server{cache: &responseCache{rdb: rdb}, log: rt.Log}
		ccs, err := rt.DialAll("auth", "users", "models", "inference")
		if err != nil {
			return err
		}
		authCC, usersCC, modelsCC, infCC := ccs[0], ccs[1], ccs[2], ccs[3]
		s.users = usersv1.NewUsersServiceClient(usersCC)
		s.models = modelsv1.NewModelsServiceClient(modelsCC)
		s.inference = inferencev1.NewInferenceServiceClient(infCC)
		s.verifier = identity.FromAuth(authv1.NewAuthServiceClient(authCC))
		s.recorder = newRecorder(db, rt.Log)
		rt.OnStop(s.recorder.close)
		if s.requests, err = rt.Telemetry.Meter.Int64Counter("bulkhead.chat.completions", metric.WithDescription("completions by model and outcome")); err != nil {
			return err
		}
		if s.cacheUse, err = rt.Telemetry.Meter.Int64Counter("bulkhead.chat.cache", metric.WithDescription("response cache lookups by result (hit, miss)")); err != nil {
			return err
		}
		chatv1.RegisterChatServiceServer(rt.GRPC, s)
		return nil
	}
}

// Complete serves one chat completion.
func (s *server) Complete(req *chatv1.CompleteRequest, stream chatv1.ChatService_CompleteServer) error {
	ctx := stream.Context()
	id, err := s.verifier.FromContext(ctx)
	if err != nil {
		return err
	}
	if err := validate(req); err != nil {
		return err
	}
	requestID := req.GetRequestId()
	if requestID == "" {
		requestID = platform.RequestID(ctx)
	}
	resolved, err := s.models.Resolve(ctx, &modelsv1.ResolveRequest{Name: req.GetModel(), AccountId: id.AccountId})
	if status.Code(err) == codes.NotFound {
		return platform.InvalidField("model", "Model Not Exist: %q", req.GetModel())
	}
	if err != nil {
		return err
	}
	m := resolved.GetModel()
	sampling := proto.CloneOf(req.GetSampling())
	if sampling == nil {
		sampling = &inferencev1.Sampling{}
	}
	if sampling.MaxTokens == nil {
		sampling.MaxTokens = proto.Int32(m.GetDefaultMaxTokens())
	}
	if mt := sampling.GetMaxTokens(); mt < 1 || mt > m.GetMaxOutputTokens() {
		return platform.InvalidField("max_tokens", "must be in [1, %d] for model %s", m.GetMaxOutputTokens(), m.GetName())
	}
	prompt := tokens.Prompt(req.GetMessages())
	if total := prompt + int64(sampling.GetMaxTokens()); total > int64(m.GetContextLength()) {
		return platform.InvalidField("messages", "This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
			m.GetContextLength(), total, prompt, sampling.GetMaxTokens())
	}

	res, err := s.users.Reserve(ctx, &usersv1.ReserveRequest{
		AccountId: id.AccountId, RequestId: requestID, Model: m.GetName(),
		MaxTokens:  prompt + int64(sampling.GetMaxTokens()),
		HoldMicros: cost(m, 0, prompt, int64(sampling.GetMaxTokens())),
	})
	if err != nil {
		s.count(ctx, m, "refused:"+status.Code(err).String())
		return err
	}
	t := &completion{s: s, ctx: ctx, stream: stream, id: id, model: m, requestID: requestID,
		reservation: res.GetReservationId(), prompt: prompt, req: req}
	if err := stream.Send(&chatv1.CompleteResponse{Event: &chatv1.CompleteResponse_Started_{Started: &chatv1.CompleteResponse_Started{
		Id: "chatcmpl-" + requestID, Created: time.Now().Unix(), Model: m.GetName(),
		SystemFingerprint: fmt.Sprintf("fp_%s_v%d", m.GetEngine(), m.GetVersion()),
	}}}); err != nil {
		t.settle(nil, 0)
		return err
	}

	deterministic := req.GetCacheOptIn() || (sampling.Temperature != nil && sampling.GetTemperature() == 0)
	var key string
	if deterministic {
		key = cacheKey(id.AccountId, m, req.GetMessages(), sampling)
		hit, err := s.cache.get(ctx, key)
		if err != nil {
			s.log.WarnContext(ctx, "response cache read", "error", err)
		}
		if hit != nil {
			s.cacheUse.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "hit")))
			return t.replay(hit)
		}
		s.cacheUse.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "miss")))
	}
	return t.generate(sampling, key)
}

// completion is one admitted request on its way.
type completion struct {
	s           *server
	ctx         context.Context
	stream      chatv1.ChatService_CompleteServer
	id          *authv1.Identity
	model       *modelsv1.Model
	requestID   string
	reservation string
	prompt      int64
	req         *chatv1.CompleteRequest
	pieces      []string
}

func (t *completion) send(ev *chatv1.CompleteResponse) error { return t.stream.Send(ev) }

func (t *completion) delta(piece string) error {
	t.pieces = append(t.pieces, piece)
	return t.send(&chatv1.CompleteResponse{Event: &chatv1.CompleteResponse_Delta_{Delta: &chatv1.CompleteResponse_Delta{Content: piece}}})
}

// replay answers from the cache: the same pieces, the prompt counted as
// cache hit.
func (t *completion) replay(hit *cachedResponse) error {
	for _, p := range hit.Pieces {
		if err := t.delta(p); err != nil {
			t.settle(&usage{hit: t.prompt, completion: hit.CompletionTokens}, 0)
			return err
		}
	}
	return t.finish(inferencev1.FinishReason(hit.Finish), &usage{hit: t.prompt, completion: hit.CompletionTokens})
}

func (t *completion) generate(sampling *inferencev1.Sampling, cacheKey string) error {
	conv := conversationID(t.id.AccountId, t.req.GetMessages())
	ctx := metadata.AppendToOutgoingContext(t.ctx, ConversationHeader, conv)
	gen, err := t.s.inference.Generate(ctx, &inferencev1.GenerateRequest{
		Engine: t.model.GetEngine(), Model: t.model.GetEngineModel(), Messages: t.req.GetMessages(),
		Sampling: sampling, RequestId: t.requestID, Buffered: !t.req.GetStream(),
	})
	if err != nil {
		t.settle(nil, 0)
		return err
	}
	for {
		r, err := gen.Recv()
		if errors.Is(err, io.EOF) {
			// A stream that ends without Finished was cut upstream.
			t.settle(t.served(), 0)
			return status.Error(codes.Unavailable, "the generation ended early")
		}
		if err != nil {
			// The client went away (the context is cancelled and so is the
			// generation), or the engine failed: bill what was served.
			t.settle(t.served(), 0)
			if t.ctx.Err() != nil {
				return status.FromContextError(t.ctx.Err()).Err()
			}
			return err
		}
		switch e := r.Event.(type) {
		case *inferencev1.GenerateResponse_Delta_:
			if err := t.delta(e.Delta.GetContent()); err != nil {
				t.settle(t.served(), 0)
				return err
			}
		case *inferencev1.GenerateResponse_Finished_:
			u := &usage{miss: t.prompt, completion: e.Finished.GetUsage().GetCompletionTokens()}
			if err := t.finish(e.Finished.GetFinishReason(), u); err != nil {
				return err
			}
			if cacheKey != "" {
				hit := &cachedResponse{Pieces: t.pieces, Finish: int32(e.Finished.GetFinishReason()), CompletionTokens: u.completion}
				if err := t.s.cache.put(context.WithoutCancel(t.ctx), cacheKey, hit, CacheTTL[sampling.GetResponseFormat()]); err != nil {
					t.s.log.WarnContext(t.ctx, "response cache write", "error", err)
				}
			}
			return nil
		}
	}
}

// served is the usage of what was streamed so far (for a stream that
// did not finish).
func (t *completion) served() *usage {
	if len(t.pieces) == 0 {
		return nil
	}
	return &usage{miss: t.prompt, completion: int64(tokens.Count(strings.Join(t.pieces, "")))}
}

func (t *completion) finish(reason inferencev1.FinishReason, u *usage) error {
	if err := t.send(&chatv1.CompleteResponse{Event: &chatv1.CompleteResponse_Finished_{Finished: &chatv1.CompleteResponse_Finished{FinishReason: reason}}}); err != nil {
		t.settle(u, reason)
		return err
	}
	t.settle(u, reason)
	return t.send(&chatv1.CompleteResponse{Event: &chatv1.CompleteResponse_Usage{Usage: &chatv1.Usage{
		PromptTokens: u.hit + u.miss, CompletionTokens: u.completion, TotalTokens: u.hit + u.miss + u.completion,
		PromptCacheHitTokens: u.hit, PromptCacheMissTokens: u.miss,
	}}})
}

type usage struct{ hit, miss, completion int64 }

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
	_, err := t.s.users.Commit(ctx, &usersv1.CommitRequest{
		ReservationId: t.reservation, RequestId: t.requestID, Model: t.model.GetName(),
		Usage: &usersv1.Usage{
			PromptTokens: u.hit + u.miss, CompletionTokens: u.completion, TotalTokens: u.hit + u.miss + u.completion,
			PromptCacheHitTokens: u.hit, PromptCacheMissTokens: u.miss, CostMicros: cost(t.model, u.hit, u.miss, u.completion),
			Requests: 1,
		},
	})
	if err != nil {
		// The reservation expires by itself; the usage is lost to the
		// ledger. Loud, because it is money.
		t.s.log.ErrorContext(ctx, "usage commit failed", "error", err, "reservation", t.reservation)
	}
	t.s.count(ctx, t.model, outcome)
	msgs := t.req.GetMessages()
	last := msgs[len(msgs)-1]
	t.s.recorder.add(turn{
		conversation: conversationID(t.id.AccountId, msgs), account: t.id.AccountId, model: t.model.GetName(), requestID: t.requestID,
		userRole: strings.ToLower(strings.TrimPrefix(last.GetRole().String(), "ROLE_")), userContent: last.GetContent(),
		reply: strings.Join(t.pieces, ""), finish: reason.String(),
	})
}

func (s *server) count(ctx context.Context, m *modelsv1.Model, outcome string) {
	s.requests.Add(ctx, 1, metric.WithAttributes(attribute.String("model", m.GetName()), attribute.String("outcome", outcome)))
}

// cost prices tokens in micro-units, rounded up.
func cost(m *modelsv1.Model, hit, miss, completion int64) int64 {
	total := float64(hit)*float64(m.GetCacheHitPriceMicrosPerMtok()) +
		float64(miss)*float64(m.GetPromptPriceMicrosPerMtok()) +
		float64(completion)*float64(m.GetCompletionPriceMicrosPerMtok())
	return int64(math.Ceil(total / 1e6))
}

// conversationID names a conversation by its tenant and opening: the
// messages up to and including the first user message.
func conversationID(account string, msgs []*inferencev1.Message) string {
	h := sha256.New()
	h.Write([]byte(account))
	for _, m := range msgs {
		fmt.Fprintf(h, "|%d:%s", m.GetRole(), m.GetContent())
		if m.GetRole() == inferencev1.Role_ROLE_USER {
			break
		}
	}
	return "conv_" + hex.EncodeToString(h.Sum(nil)[:12])
}

func validate(req *chatv1.CompleteRequest) error {
	if req.GetModel() == "" {
		return platform.InvalidField("model", "is required")
	}
	msgs := req.GetMessages()
	if len(msgs) == 0 {
		return platform.InvalidField("messages", "at least one message is required")
	}
	for i, m := range msgs {
		if m.GetRole() == inferencev1.Role_ROLE_UNSPECIFIED {
			return platform.InvalidField(fmt.Sprintf("messages[%d].role", i), "is required")
		}
	}
	s := req.GetSampling()
	switch {
	case s.Temperature != nil && (s.GetTemperature() < 0 || s.GetTemperature() > 2):
		return platform.InvalidField("temperature", "must be in [0, 2]")
	case s.TopP != nil && (s.GetTopP() <= 0 || s.GetTopP() > 1):
		return platform.InvalidField("top_p", "must be in (0, 1]")
	case len(s.GetStop()) > 16:
		return platform.InvalidField("stop", "at most 16 sequences")
	}
	return nil
}
