// Package models is the model registry: names, versions, engines, limits,
// prices and fallback chains, and Resolve, which follows the chain past
// models that are disabled or unhealthy.
package models

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-mesh/bulkhead/services/platform"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
)

// RefreshInterval is how often a replica reloads the registry, to see
// changes made through another replica.
const RefreshInterval = 2 * time.Second

type server struct {
	modelsv1.UnimplementedModelsServiceServer
	store *store
	log   interface {
		Warn(string, ...any)
	}

	mu     sync.RWMutex
	byName map[string]*modelsv1.Model

	config *config
}

var _ modelsv1.ModelsServiceServer = (*server)(nil)

// Setup wires the service. o is read when the service starts (after the
// flags are parsed).
func Setup(opts *Options) platform.Setup {
	return func(ctx context.Context, rt *platform.Runtime) error {
		o := *opts
		if o.ProbeInterval <= 0 {
			o.ProbeInterval = 15 * time.Second
		}
		db, err := rt.Postgres(ctx, migrations)
		if err != nil {
			return err
		}
		s := &server{store: &store{db: db}, log: rt.Log}
		if err := s.reload(ctx); err != nil {
			return err
		}
		refreshCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		rt.OnStop(func() error { cancel(); return nil })
		go s.refresh(refreshCtx)
		var src source
		switch {
		case len(o.ConfigDirs) > 0 && o.KubernetesModels:
			return errors.New("models: --config-dir and --kubernetes-models are two modes; choose one")
		case len(o.ConfigDirs) > 0:
			src = &dirSource{dirs: o.ConfigDirs, log: rt.Log}
		case o.KubernetesModels:
			if src, err = newKubeSource(ctx, o.KubeConfig, o.KubernetesNamespace, rt.Log); err != nil {
				return err
			}
		}
		if src != nil {
			s.config = &config{s: s, src: src, secret: rt.UpstreamKey, client: &http.Client{}}
			if err := s.config.run(refreshCtx, o.ProbeInterval); err != nil {
				return err
			}
		}
		modelsv1.RegisterModelsServiceServer(rt.GRPC, s)
		return nil
	}
}

func (s *server) reload(ctx context.Context) error {
	all, err := s.store.all(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]*modelsv1.Model, len(all))
	for _, x := range all {
		m[x.Name] = x
	}
	s.mu.Lock()
	s.byName = m
	s.mu.Unlock()
	return nil
}

func (s *server) refresh(ctx context.Context) {
	t := time.NewTicker(RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.reload(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reloading the registry", "error", err)
			}
		}
	}
}

// visible returns a copy of the model if account may see it: public
// models, an account's own fine-tuned ones, and those whose visibility
// lists it.
func (s *server) visible(name, account string) (*modelsv1.Model, bool) {
	s.mu.RLock()
	m, ok := s.byName[name]
	s.mu.RUnlock()
	if !ok || !visibleTo(m, account) {
		return nil, false
	}
	return proto.CloneOf(m), true
}

func visibleTo(m *modelsv1.Model, account string) bool {
	if m.AccountId == "" && len(m.VisibleTo) == 0 {
		return true
	}
	return account != "" && (m.AccountId == account || slices.Contains(m.VisibleTo, account))
}

// current is the registry's model of that name, whoever may see it.
func (s *server) current(name string) (*modelsv1.Model, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.byName[name]
	return m, ok
}

// all is every model of the registry.
func (s *server) all() []*modelsv1.Model {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*modelsv1.Model, 0, len(s.byName))
	for _, m := range s.byName {
		out = append(out, m)
	}
	return out
}

func (s *server) ListModels(_ context.Context, req *modelsv1.ListModelsRequest) (*modelsv1.ListModelsResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := &modelsv1.ListModelsResponse{}
	for _, m := range s.byName {
		if !visibleTo(m, req.GetAccountId()) {
			continue
		}
		if m.State != modelsv1.ModelState_MODEL_STATE_ENABLED && !req.GetIncludeUnavailable() {
			continue
		}
		out.Models = append(out.Models, proto.CloneOf(m))
	}
	sortModels(out.Models)
	return out, nil
}

func (s *server) GetModel(_ context.Context, req *modelsv1.GetModelRequest) (*modelsv1.GetModelResponse, error) {
	m, ok := s.visible(req.GetName(), req.GetAccountId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "model %q does not exist", req.GetName())
	}
	return &modelsv1.GetModelResponse{Model: m}, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._:-]{0,127}$`)

var engines = map[string]bool{"builtin": true, "openai": true}

func validate(m *modelsv1.Model) error {
	switch {
	case m == nil:
		return platform.InvalidField("model", "is required")
	case !nameRE.MatchString(m.GetName()):
		return platform.InvalidField("model.name", "%q must be 1-128 characters of a-z, 0-9, '.', '_', ':', '-', starting with a letter or digit", m.GetName())
	case !engines[m.GetEngine()]:
		return platform.InvalidField("model.engine", "%q is not an engine (builtin or openai)", m.GetEngine())
	case m.GetEngineModel() == "":
		return platform.InvalidField("model.engine_model", "is required")
	case m.GetContextLength() <= 0:
		return platform.InvalidField("model.context_length", "must be positive")
	case m.GetMaxOutputTokens() <= 0 || m.GetMaxOutputTokens() > m.GetContextLength():
		return platform.InvalidField("model.max_output_tokens", "must be in 1..context_length (%d)", m.GetContextLength())
	case m.GetDefaultMaxTokens() <= 0 || m.GetDefaultMaxTokens() > m.GetMaxOutputTokens():
		return platform.InvalidField("model.default_max_tokens", "must be in 1..max_output_tokens (%d)", m.GetMaxOutputTokens())
	case m.GetPromptPriceMicrosPerMtok() < 0 || m.GetCompletionPriceMicrosPerMtok() < 0 || m.GetCacheHitPriceMicrosPerMtok() < 0:
		return platform.InvalidField("model.prices", "must not be negative")
	case modelsv1.Thinking_name[int32(m.GetThinking())] == "":
		return platform.InvalidField("model.thinking", "%d is not a thinking mode", m.GetThinking())
	case m.GetDeprecatedFor() == m.GetName():
		return platform.InvalidField("model.deprecated_for", "names the model itself")
	}
	for i, f := range m.GetFallbacks() {
		if f == m.GetName() {
			return platform.InvalidField("model.fallbacks", "entry %d names the model itself", i)
		}
	}
	return nil
}

func (s *server) RegisterModel(ctx context.Context, req *modelsv1.RegisterModelRequest) (*modelsv1.RegisterModelResponse, error) {
	m := req.GetModel()
	if err := validate(m); err != nil {
		return nil, err
	}
	for i, f := range m.GetFallbacks() {
		if _, ok := s.visible(f, m.GetAccountId()); !ok {
			return nil, platform.InvalidField("model.fallbacks", "entry %d: model %q does not exist", i, f)
		}
	}
	if d := m.GetDeprecatedFor(); d != "" {
		if _, ok := s.visible(d, m.GetAccountId()); !ok {
			return nil, platform.InvalidField("model.deprecated_for", "model %q does not exist", d)
		}
	}
	out, err := s.store.upsert(ctx, m)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "register: %v", err)
	}
	if err := s.reload(ctx); err != nil {
		return nil, status.Errorf(codes.Internal, "reload: %v", err)
	}
	return &modelsv1.RegisterModelResponse{Model: out}, nil
}

func (s *server) SetModelState(ctx context.Context, req *modelsv1.SetModelStateRequest) (*modelsv1.SetModelStateResponse, error) {
	if stateName(req.GetState()) == "" {
		return nil, platform.InvalidField("state", "must be ENABLED, DISABLED or UNHEALTHY")
	}
	m, err := s.store.setState(ctx, req.GetName(), req.GetState(), req.GetReason())
	if errors.Is(err, errNotFound) {
		return nil, status.Errorf(codes.NotFound, "model %q does not exist", req.GetName())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "set state: %v", err)
	}
	if err := s.reload(ctx); err != nil {
		return nil, status.Errorf(codes.Internal, "reload: %v", err)
	}
	return &modelsv1.SetModelStateResponse{Model: m}, nil
}

// Resolve returns the model that serves name: itself when enabled, else
// the first enabled model along its fallback chain (depth first, in
// order, each model once).
func (s *server) Resolve(_ context.Context, req *modelsv1.ResolveRequest) (*modelsv1.ResolveResponse, error) {
	first, ok := s.visible(req.GetName(), req.GetAccountId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "model %q does not exist", req.GetName())
	}
	seen := map[string]bool{}
	var skipped []string
	var walk func(m *modelsv1.Model) *modelsv1.Model
	walk = func(m *modelsv1.Model) *modelsv1.Model {
		if seen[m.Name] {
			return nil
		}
		seen[m.Name] = true
		if m.State == modelsv1.ModelState_MODEL_STATE_ENABLED && !slices.Contains(req.GetExclude(), m.Name) {
			return m
		}
		skipped = append(skipped, m.Name)
		for _, f := range m.Fallbacks {
			if fm, ok := s.visible(f, req.GetAccountId()); ok {
				if r := walk(fm); r != nil {
					return r
				}
			}
		}
		return nil
	}
	if m := walk(first); m != nil {
		return &modelsv1.ResolveResponse{Model: m, Skipped: skipped}, nil
	}
	return nil, platform.Reason(codes.Unavailable, "MODEL_UNAVAILABLE", 5*time.Second, "model "+req.GetName()+" and its fallbacks are unavailable")
}

// ListModelConfigs reports the Model objects of the configuration.
func (s *server) ListModelConfigs(context.Context, *modelsv1.ListModelConfigsRequest) (*modelsv1.ListModelConfigsResponse, error) {
	if s.config == nil {
		return nil, status.Error(codes.FailedPrecondition, "this models service reads no configuration directory (--config-dir)")
	}
	return s.config.status(), nil
}

func sortModels(ms []*modelsv1.Model) {
	slices.SortFunc(ms, func(a, b *modelsv1.Model) int { return strings.Compare(a.Name, b.Name) })
}
