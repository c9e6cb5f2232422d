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
	"flag"
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-mesh/bulkhead/services/identity"
	"github.com/bulkhead-mesh/bulkhead/services/outbox"
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
type Options struct {
	// OutboxDir keeps the usage events that wait for Kafka (one process per
	// directory; default: bulkhead/outbox/INSTANCE under the user's cache
	// directory).
	OutboxDir string
	// OutboxMaxBytes bounds them: beyond it chat refuses new requests
	// (503) until Kafka takes the backlog, rather than serve unbilled.
	OutboxMaxBytes int64
}

// Flags registers the options.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.OutboxDir, "outbox-dir", "", "keep the usage events waiting for Kafka here, across restarts (default: bulkhead/outbox/INSTANCE in the user's cache directory; one process per directory)")
	fs.Int64Var(&o.OutboxMaxBytes, "outbox-max-bytes", 64<<20, "usage events waiting for Kafka beyond which new requests are refused with 503")
}

type server struct {
	chatv1.UnimplementedChatServiceServer
	verifier  *identity.Verifier
	users     usersv1.UsersServiceClient
	models    modelsv1.ModelsServiceClient
	inference inferencev1.InferenceServiceClient
	cache     *responseCache
	recorder  *recorder
	// usage is the outbox of the usage events (services/events: Usage).
	usage    *outbox.Outbox
	instance string
	log      interface {
		WarnContext(context.Context, string, ...any)
		ErrorContext(context.Context, string, ...any)
	}

	requests  metric.Int64Counter
	cacheUse  metric.Int64Counter
	continued metric.Int64Counter
	fallbacks metric.Int64Counter
}

var _ chatv1.ChatServiceServer = (*server)(nil)

// Setup wires the service.
func Setup(o *Options) platform.Setup {
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
		if s.usage, err = openUsageOutbox(rt, o); err != nil {
			return err
		}
		s.instance = rt.Config.Instance
		if s.requests, err = rt.Telemetry.Meter.Int64Counter("bulkhead.chat.completions", metric.WithDescription("completions by model and outcome")); err != nil {
			return err
		}
		if s.cacheUse, err = rt.Telemetry.Meter.Int64Counter("bulkhead.chat.cache", metric.WithDescription("response cache lookups by result (hit, miss)")); err != nil {
			return err
		}
		if s.continued, err = rt.Telemetry.Meter.Int64Counter("bulkhead.chat.continuations", metric.WithDescription("replies continued on another replica or backend after their generation broke mid-stream, by model and the error that broke it")); err != nil {
			return err
		}
		if s.fallbacks, err = rt.Telemetry.Meter.Int64Counter("bulkhead.chat.fallbacks", metric.WithDescription("requests served by a model of the fallback chain after the model's generation failed before anything was sent, by model, fallback and error")); err != nil {
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
	prompt := tokens.Request(req.GetMessages(), req.Suffix, req.GetTools())
	adm, err := admit(req, req.GetSampling(), m, prompt)
	if err != nil {
		return err
	}
	sampling := adm.sampling
	if s.usage.Full() {
		// Served requests must be billed: with the usage events' outbox at
		// its bound (Kafka away for long), chat stops admitting.
		s.count(ctx, m, "refused:outbox_full")
		return status.Error(codes.Unavailable, "usage cannot be recorded right now (the event queue is unreachable and the local outbox is full); try again shortly")
	}

	res, err := s.users.Reserve(ctx, &usersv1.ReserveRequest{
		AccountId: id.AccountId, RequestId: requestID, Model: m.GetName(),
		MaxTokens: adm.tokens, HoldMicros: adm.hold,
	})
	if err != nil {
		s.count(ctx, m, "refused:"+status.Code(err).String())
		return err
	}
	t := &completion{s: s, ctx: ctx, stream: stream, id: id, model: m, asked: m, admitted: adm, requestID: requestID,
		reservation: res.GetReservationId(), prompt: prompt, req: req, startedAt: time.Now()}

	// Temperature 0 makes a reply deterministic, except while thinking,
	// which ignores it (as DeepSeek's does). A reply with log-probabilities
	// is always computed: the cache keeps text, not the model's numbers.
	deterministic := (req.GetCacheOptIn() || (sampling.Temperature != nil && sampling.GetTemperature() == 0 && !sampling.GetThinking())) &&
		!sampling.GetLogprobs()
	var key, cache string
	var hit *cachedResponse
	if deterministic {
		key, cache = cacheKey(id.AccountId, m, req, sampling), "miss"
		if hit, err = s.cache.get(ctx, key); err != nil {
			s.log.WarnContext(ctx, "response cache read", "error", err)
		}
		if hit != nil {
			cache = "hit"
		}
		s.cacheUse.Add(ctx, 1, metric.WithAttributes(attribute.String("result", cache)))
	}
	t.started = &chatv1.CompleteResponse_Started{
		Id: "chatcmpl-" + requestID, Created: time.Now().Unix(), Model: m.GetName(),
		SystemFingerprint: fingerprint(m), Cache: cache,
	}
	if err := stream.Send(&chatv1.CompleteResponse{Event: &chatv1.CompleteResponse_Started_{Started: t.started}}); err != nil {
		t.settle(nil, 0)
		return err
	}
	if hit != nil {
		return t.replay(hit)
	}
	return t.generate(sampling, key)
}

// fingerprint is the system_fingerprint of a model's replies.
func fingerprint(m *modelsv1.Model) string {
	return fmt.Sprintf("fp_%s_v%d", m.GetEngine(), m.GetVersion())
}

// admission is a request's terms with one model.
type admission struct {
	sampling *inferencev1.Sampling
	// tokens is the prompt and max_tokens; hold the most it may cost.
	tokens, hold int64
}

// admit settles the request's sampling against model m (max_tokens,
// thinking, tools, the context length) and prices its worst case.
func admit(req *chatv1.CompleteRequest, asked *inferencev1.Sampling, m *modelsv1.Model, prompt int64) (*admission, error) {
	sampling := proto.CloneOf(asked)
	if sampling == nil {
		sampling = &inferencev1.Sampling{}
	}
	if sampling.MaxTokens == nil {
		sampling.MaxTokens = proto.Int32(m.GetDefaultMaxTokens())
	}
	if req.Suffix != nil {
		// FIM answers directly, as DeepSeek's does.
		if sampling.GetThinking() {
			return nil, platform.InvalidField("thinking", "fill-in-the-middle completions do not think")
		}
		sampling.Thinking = proto.Bool(false)
	}
	if err := thinkingMode(sampling, m); err != nil {
		return nil, err
	}
	if err := toolsFor(req, sampling, m); err != nil {
		return nil, err
	}
	if mt := sampling.GetMaxTokens(); mt < 1 || mt > m.GetMaxOutputTokens() {
		return nil, platform.InvalidField("max_tokens", "must be in [1, %d] for model %s", m.GetMaxOutputTokens(), m.GetName())
	}
	if total := prompt + int64(sampling.GetMaxTokens()); total > int64(m.GetContextLength()) {
		return nil, platform.InvalidField("messages", "This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
			m.GetContextLength(), total, prompt, sampling.GetMaxTokens())
	}
	return &admission{sampling: sampling, tokens: prompt + int64(sampling.GetMaxTokens()), hold: cost(m, 0, prompt, int64(sampling.GetMaxTokens()))}, nil
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

// thinkingMode settles the request's thinking mode against the model's:
// unset takes the model's default; a model without one refuses it.
func thinkingMode(s *inferencev1.Sampling, m *modelsv1.Model) error {
	switch {
	case s.Thinking == nil:
		s.Thinking = proto.Bool(m.GetThinking() == modelsv1.Thinking_THINKING_ON_BY_DEFAULT)
	case s.GetThinking() && m.GetThinking() == modelsv1.Thinking_THINKING_UNSPECIFIED:
		return platform.InvalidField("thinking", "model %s has no thinking mode", m.GetName())
	}
	if !s.GetThinking() {
		s.ReasoningEffort = inferencev1.ReasoningEffort_REASONING_EFFORT_UNSPECIFIED
	} else if s.ReasoningEffort == inferencev1.ReasoningEffort_REASONING_EFFORT_UNSPECIFIED {
		s.ReasoningEffort = inferencev1.ReasoningEffort_REASONING_EFFORT_HIGH
	}
	return nil
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
		if m.GetPrefix() && (i != len(msgs)-1 || m.GetRole() != inferencev1.Role_ROLE_ASSISTANT) {
			return platform.InvalidField(fmt.Sprintf("messages[%d].prefix", i), "only the last message, an assistant's, may be a prefix")
		}
	}
	if req.Suffix != nil && (len(msgs) != 1 || msgs[0].GetRole() != inferencev1.Role_ROLE_USER) {
		return platform.InvalidField("messages", "a fill-in-the-middle completion has one user message, its prompt")
	}
	if err := validateTools(req); err != nil {
		return err
	}
	s := req.GetSampling()
	switch {
	case s.Temperature != nil && (s.GetTemperature() < 0 || s.GetTemperature() > 2):
		return platform.InvalidField("temperature", "must be in [0, 2]")
	case s.TopP != nil && (s.GetTopP() <= 0 || s.GetTopP() > 1):
		return platform.InvalidField("top_p", "must be in (0, 1]")
	case len(s.GetStop()) > 16:
		return platform.InvalidField("stop", "at most 16 sequences")
	case s.FrequencyPenalty != nil && (s.GetFrequencyPenalty() < -2 || s.GetFrequencyPenalty() > 2):
		return platform.InvalidField("frequency_penalty", "must be in [-2, 2]")
	case s.PresencePenalty != nil && (s.GetPresencePenalty() < -2 || s.GetPresencePenalty() > 2):
		return platform.InvalidField("presence_penalty", "must be in [-2, 2]")
	case s.GetTopLogprobs() < 0 || s.GetTopLogprobs() > 20:
		return platform.InvalidField("top_logprobs", "must be in [0, 20]")
	case s.GetTopLogprobs() > 0 && !s.GetLogprobs():
		return platform.InvalidField("top_logprobs", "needs logprobs: true")
	}
	return nil
}
