package modelconfig

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/bulkhead-mesh/bulkhead/services/models/api/v1alpha1"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
)

// Source is the registry's source of models read from the configuration.
const Source = "config"

var thinking = map[string]modelsv1.Thinking{
	"": modelsv1.Thinking_THINKING_UNSPECIFIED, "none": modelsv1.Thinking_THINKING_UNSPECIFIED,
	"enabled": modelsv1.Thinking_THINKING_ON_BY_DEFAULT, "disabled": modelsv1.Thinking_THINKING_OFF_BY_DEFAULT,
}

// ToRegistry is the registry's model for an accepted object, defaults
// filled in.
func ToRegistry(m *v1alpha1.Model) *modelsv1.Model {
	s := &m.Spec
	l := s.Limits
	out := &modelsv1.Model{
		Name: m.Name, Engine: s.Engine, ContextLength: l.ContextLength,
		MaxOutputTokens: maxOutput(l), DefaultMaxTokens: l.DefaultMaxTokens,
		Fallbacks: s.Fallbacks, OwnedBy: s.OwnedBy, Thinking: thinking[s.Thinking], DeprecatedFor: s.DeprecatedFor,
		Source: Source,
	}
	if out.DefaultMaxTokens == 0 {
		out.DefaultMaxTokens = out.MaxOutputTokens
	}
	out.CacheHitPriceMicrosPerMtok, _ = Micros(s.Prices.CacheHit)
	out.PromptPriceMicrosPerMtok, _ = Micros(s.Prices.CacheMiss)
	out.CompletionPriceMicrosPerMtok, _ = Micros(s.Prices.Output)
	if v := s.Visibility; v != nil {
		out.VisibleTo = v.Accounts
	}
	switch s.Engine {
	case "builtin":
		out.EngineModel = DefaultWeights
		if s.Builtin != nil {
			out.EngineModel = s.Builtin.Weights
		}
	case "openai":
		for _, b := range s.Backends {
			out.Upstreams = append(out.Upstreams, upstream(m.Name, b))
		}
		// engine_model is what the registry (and the response cache key)
		// shows: the first backend's model.
		out.EngineModel = out.Upstreams[0].Model
		h := &inferencev1.PassiveHealth{ConsecutiveFailures: DefaultConsecutiveFailures, EjectionTime: durationpb.New(DefaultEjectionTime)}
		if p := s.PassiveHealth; p != nil {
			if p.ConsecutiveFailures > 0 {
				h.ConsecutiveFailures = p.ConsecutiveFailures
			}
			h.EjectionTime = duration(p.EjectionTime, DefaultEjectionTime)
		}
		out.PassiveHealth = h
	}
	return out
}

func upstream(model string, b v1alpha1.Backend) *inferencev1.Upstream {
	u := &inferencev1.Upstream{
		Name: b.Name, BaseUrl: b.BaseURL, Model: b.Model, Weight: 1, Priority: b.Priority, MaxConcurrency: b.MaxConcurrency,
		ConnectTimeout: durationpb.New(DefaultConnectTimeout), FirstTokenTimeout: durationpb.New(DefaultFirstTokenTimeout),
		IdleTimeout: durationpb.New(DefaultIdleTimeout),
	}
	if u.Model == "" {
		u.Model = model
	}
	if b.Weight != nil {
		u.Weight = *b.Weight
	}
	if k := b.APIKey; k != nil {
		u.ApiKeyVaultPath, u.ApiKeyVaultKey = k.VaultPath, k.Key
		if u.ApiKeyVaultKey == "" {
			u.ApiKeyVaultKey = DefaultAPIKeyKey
		}
	}
	if t := b.Timeouts; t != nil {
		u.ConnectTimeout = duration(t.Connect, DefaultConnectTimeout)
		u.FirstTokenTimeout = duration(t.FirstToken, DefaultFirstTokenTimeout)
		u.IdleTimeout = duration(t.Idle, DefaultIdleTimeout)
	}
	return u
}

func duration(d v1alpha1.Duration, def time.Duration) *durationpb.Duration {
	if v, err := time.ParseDuration(string(d)); err == nil && v > 0 {
		return durationpb.New(v)
	}
	return durationpb.New(def)
}
