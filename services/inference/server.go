package inference

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-mesh/bulkhead/services/platform"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
	trainingv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/training/v1"
	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

type server struct {
	inferencev1.UnimplementedInferenceServiceServer
	engines map[string]Engine
	// upstreams runs engine openai on the upstreams a request names.
	upstreams *pool
	slots     chan struct{}
	// prefixes is the builtin engine's prefix cache.
	prefixes *prefixCache

	requests     metric.Int64Counter
	prefixTokens metric.Int64Counter
	tokens       metric.Int64Counter
	ttft         metric.Float64Histogram
}

var _ inferencev1.InferenceServiceServer = (*server)(nil)

// Options are the inference service's own settings.
type Options struct {
	// TokenInterval is the builtin engine's per-piece decode time.
	TokenInterval time.Duration
	// MaxConcurrency bounds the generations running at once; more are
	// refused with RESOURCE_EXHAUSTED, which the mesh retries on another
	// replica (default 64).
	MaxConcurrency int
	// OpenAIBaseURL enables the openai engine (its API key, if any, is
	// openai_api_key in the Vault secret).
	OpenAIBaseURL string
	// PrefixCacheBlocks bounds the builtin engine's prefix cache, in
	// prompt blocks (messages) kept (0: DefaultPrefixCacheBlocks;
	// negative: no cache).
	PrefixCacheBlocks int
}

// Flags registers the options as flags.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.DurationVar(&o.TokenInterval, "token-interval", 0, "builtin engine: time per generated piece, like a real model's decode step (0: as fast as the CPU goes)")
	fs.IntVar(&o.MaxConcurrency, "max-concurrency", 64, "generations at once; beyond it calls get RESOURCE_EXHAUSTED")
	fs.StringVar(&o.OpenAIBaseURL, "openai-base-url", "", "enable the openai engine with this OpenAI-compatible upstream (e.g. http://127.0.0.1:11434/v1)")
	fs.IntVar(&o.PrefixCacheBlocks, "prefix-cache-blocks", DefaultPrefixCacheBlocks, "builtin engine: prompt blocks (messages) its prefix cache keeps, least recently used out first (negative: no cache)")
}

// Setup wires the service. o is read when the service starts (after the
// flags are parsed).
func Setup(opts *Options) platform.Setup {
	return func(ctx context.Context, rt *platform.Runtime) error {
		o := *opts
		if o.MaxConcurrency <= 0 {
			o.MaxConcurrency = 64
		}
		if o.PrefixCacheBlocks == 0 {
			o.PrefixCacheBlocks = DefaultPrefixCacheBlocks
		}
		tokens.Warm()
		t0 := time.Now()
		builtin := NewBuiltin(o.TokenInterval)
		// Fine-tuned builtin models are loaded from training when first asked for.
		trainingCC, err := rt.Dial("training")
		if err != nil {
			return err
		}
		builtin.adapters = newAdapters(trainingv1.NewTrainingServiceClient(trainingCC), DefaultAdapters)
		s := &server{engines: map[string]Engine{"builtin": builtin}, slots: make(chan struct{}, o.MaxConcurrency),
			prefixes: newPrefixCache(o.PrefixCacheBlocks)}
		rt.Log.Info("builtin model trained", "duration", time.Since(t0))
		if o.OpenAIBaseURL != "" {
			s.engines["openai"] = &OpenAI{BaseURL: o.OpenAIBaseURL, APIKey: rt.Secrets["openai_api_key"]}
		}
		m := rt.Telemetry.Meter
		if s.upstreams, err = newPool(rt.UpstreamKey, m); err != nil {
			return err
		}
		if s.requests, err = m.Int64Counter("bulkhead.inference.requests", metric.WithDescription("generations by engine and finish reason")); err != nil {
			return err
		}
		if s.tokens, err = m.Int64Counter("bulkhead.inference.completion_tokens", metric.WithDescription("tokens generated")); err != nil {
			return err
		}
		if s.prefixTokens, err = m.Int64Counter("bulkhead.inference.prefix_cache_tokens", metric.WithDescription("builtin engine prompt tokens by prefix cache result (hit, miss)")); err != nil {
			return err
		}
		if s.ttft, err = m.Float64Histogram("bulkhead.inference.time_to_first_token", metric.WithUnit("s")); err != nil {
			return err
		}
		inferencev1.RegisterInferenceServiceServer(rt.GRPC, s)
		return nil
	}
}

func (s *server) engine(name string, ups []*inferencev1.Upstream, health *inferencev1.PassiveHealth) (Engine, error) {
	if name == "" {
		name = "builtin"
	}
	if name == "openai" && len(ups) > 0 {
		return upstreamEngine{p: s.upstreams, ups: ups, health: health}, nil
	}
	e, ok := s.engines[name]
	if !ok {
		if name == "openai" {
			return nil, status.Error(codes.FailedPrecondition, "engine openai: the model names no upstream (spec.backends of its Model) and this replica has no --openai-base-url")
		}
		return nil, status.Errorf(codes.InvalidArgument, "engine %q is not enabled on this server", name)
	}
	return e, nil
}

// Generate streams a generation. Nothing is sent before the first piece
// (or, buffered, before the last): a replica that fails before then has
// not committed the call, so the mesh's retry policy can replay it on
// another replica.
func (s *server) Generate(req *inferencev1.GenerateRequest, stream inferencev1.InferenceService_GenerateServer) error {
	ctx := stream.Context()
	eng, err := s.engine(req.GetEngine(), req.GetUpstreams(), req.GetPassiveHealth())
	if err != nil {
		return err
	}
	if len(req.GetMessages()) == 0 {
		return status.Error(codes.InvalidArgument, "messages: at least one message is required")
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return status.Error(codes.ResourceExhausted, "inference: all generation slots are busy")
	}
	if req.Suffix != nil && len(req.GetMessages()) != 1 {
		return status.Error(codes.InvalidArgument, "suffix: a fill-in-the-middle request has one message, its prompt")
	}
	_, builtin := eng.(*Builtin)
	promptTokens, cachedTokens := s.prefill(ctx, req, builtin)
	t0 := time.Now()
	started := false
	var buffered []Piece
	send := func(piece Piece) error {
		if !started {
			started = true
			s.ttft.Record(ctx, time.Since(t0).Seconds())
			if err := stream.Send(&inferencev1.GenerateResponse{Event: &inferencev1.GenerateResponse_Started_{
				Started: &inferencev1.GenerateResponse_Started{Model: req.GetModel(), PromptTokens: promptTokens}}}); err != nil {
				return err
			}
		}
		return stream.Send(&inferencev1.GenerateResponse{Event: &inferencev1.GenerateResponse_Delta_{
			Delta: &inferencev1.GenerateResponse_Delta{Content: piece.Content, ReasoningContent: piece.Reasoning, ToolCalls: piece.ToolCalls, Logprobs: piece.Logprobs}}})
	}
	emit := send
	if req.GetBuffered() {
		emit = func(piece Piece) error { buffered = append(buffered, piece); return nil }
	}
	sampling := req.GetSampling()
	if sampling == nil {
		sampling = &inferencev1.Sampling{}
	}
	res, err := eng.Generate(ctx, Request{ID: req.GetRequestId(), Model: req.GetModel(), Messages: req.GetMessages(), Sampling: sampling, PromptTokens: promptTokens, Continuation: req.GetContinuation(), Suffix: req.Suffix,
		Tools: req.GetTools(), ToolChoice: req.GetToolChoice()}, emit)
	if err != nil && ctx.Err() != nil {
		// However it surfaced (a failed send, the engine's own check), the
		// caller went away.
		err = ctx.Err()
	}
	attrs := metric.WithAttributes(attribute.String("engine", req.GetEngine()), attribute.String("model", req.GetModel()), attribute.String("finish", finishName(res.Finish, err)))
	s.requests.Add(ctx, 1, attrs)
	s.tokens.Add(ctx, res.CompletionTokens, attrs)
	if builtin {
		res.CachedPromptTokens = cachedTokens
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return status.FromContextError(err).Err()
		}
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Errorf(codes.Internal, "generation: %v", err)
	}
	for _, piece := range buffered {
		if err := send(piece); err != nil {
			return err
		}
	}
	if !started {
		// An empty generation still announces itself.
		if err := stream.Send(&inferencev1.GenerateResponse{Event: &inferencev1.GenerateResponse_Started_{
			Started: &inferencev1.GenerateResponse_Started{Model: req.GetModel(), PromptTokens: res.PromptTokens}}}); err != nil {
			return err
		}
	}
	return stream.Send(&inferencev1.GenerateResponse{Event: &inferencev1.GenerateResponse_Finished_{Finished: &inferencev1.GenerateResponse_Finished{
		FinishReason: res.Finish,
		Usage: &inferencev1.TokenUsage{PromptTokens: res.PromptTokens, CompletionTokens: res.CompletionTokens, ReasoningTokens: res.ReasoningTokens,
			CachedPromptTokens: res.CachedPromptTokens},
	}}})
}

// DefaultPrefixCacheBlocks is --prefix-cache-blocks' default: about 10 MB.
const DefaultPrefixCacheBlocks = 1 << 16

// prefill counts the prompt's tokens; for the builtin engine through its
// prefix cache, which says how many of them it did not process again.
func (s *server) prefill(ctx context.Context, req *inferencev1.GenerateRequest, builtin bool) (prompt, cached int64) {
	if req.Suffix != nil || !builtin {
		return tokens.Request(req.GetMessages(), req.Suffix, req.GetTools()), 0
	}
	prompt, cached = s.prefixes.prefill(req.GetCacheScope(), req.GetModel(), tokens.Blocks(req.GetMessages(), req.GetTools()))
	s.prefixTokens.Add(ctx, cached, metric.WithAttributes(attribute.String("result", "hit")))
	s.prefixTokens.Add(ctx, prompt-cached, metric.WithAttributes(attribute.String("result", "miss")))
	return prompt, cached
}

// CountTokens counts the prompt tokens of a conversation.
func (s *server) CountTokens(_ context.Context, req *inferencev1.CountTokensRequest) (*inferencev1.CountTokensResponse, error) {
	if name := req.GetEngine(); name != "" && name != "builtin" && name != "openai" {
		return nil, status.Errorf(codes.InvalidArgument, "engine %q is not an engine", name)
	}
	return &inferencev1.CountTokensResponse{PromptTokens: tokens.Prompt(req.GetMessages())}, nil
}

func finishName(f inferencev1.FinishReason, err error) string {
	if err != nil {
		code := status.Code(err)
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			code = status.FromContextError(err).Code()
		}
		return fmt.Sprintf("error:%s", code)
	}
	return f.String()
}
