package models

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
)

//go:embed migrations/*.sql
var migrations embed.FS

type store struct{ db *pgxpool.Pool }

var states = map[string]modelsv1.ModelState{
	"enabled":   modelsv1.ModelState_MODEL_STATE_ENABLED,
	"disabled":  modelsv1.ModelState_MODEL_STATE_DISABLED,
	"unhealthy": modelsv1.ModelState_MODEL_STATE_UNHEALTHY,
}

var thinkings = map[string]modelsv1.Thinking{
	"none": modelsv1.Thinking_THINKING_UNSPECIFIED,
	"on":   modelsv1.Thinking_THINKING_ON_BY_DEFAULT,
	"off":  modelsv1.Thinking_THINKING_OFF_BY_DEFAULT,
}

func thinkingName(t modelsv1.Thinking) string {
	for k, v := range thinkings {
		if v == t {
			return k
		}
	}
	return "none"
}

func stateName(s modelsv1.ModelState) string {
	for k, v := range states {
		if v == s {
			return k
		}
	}
	return ""
}

const columns = `name, version, engine, engine_model, context_length, max_output_tokens, default_max_tokens,
	fallbacks, state, owned_by, base_model, fine_tuning_job_id, account_id,
	prompt_price_micros_per_mtok, cache_hit_price_micros_per_mtok, completion_price_micros_per_mtok, created_at,
	thinking, deprecated_for, upstreams, passive_health, visible_to, source, state_reason`

// removedReason is the state_reason of a config model whose object was
// removed: applying the object again enables it again.
const removedReason = "removed from the configuration"

func scan(row pgx.Row) (*modelsv1.Model, error) {
	var m modelsv1.Model
	var state string
	var created time.Time
	var thinking string
	var upstreams []json.RawMessage
	var health json.RawMessage
	err := row.Scan(&m.Name, &m.Version, &m.Engine, &m.EngineModel, &m.ContextLength, &m.MaxOutputTokens, &m.DefaultMaxTokens,
		&m.Fallbacks, &state, &m.OwnedBy, &m.BaseModel, &m.FineTuningJobId, &m.AccountId,
		&m.PromptPriceMicrosPerMtok, &m.CacheHitPriceMicrosPerMtok, &m.CompletionPriceMicrosPerMtok, &created,
		&thinking, &m.DeprecatedFor, &upstreams, &health, &m.VisibleTo, &m.Source, &m.StateReason)
	if err != nil {
		return nil, err
	}
	for _, raw := range upstreams {
		u := &inferencev1.Upstream{}
		if err := protojson.Unmarshal(raw, u); err != nil {
			return nil, fmt.Errorf("model %s: upstreams: %w", m.Name, err)
		}
		m.Upstreams = append(m.Upstreams, u)
	}
	if string(health) != "{}" {
		m.PassiveHealth = &inferencev1.PassiveHealth{}
		if err := protojson.Unmarshal(health, m.PassiveHealth); err != nil {
			return nil, fmt.Errorf("model %s: passive_health: %w", m.Name, err)
		}
	}
	m.State = states[state]
	m.Thinking = thinkings[thinking]
	m.CreatedAt = timestamppb.New(created)
	// Only the openai engine passes tools on (to upstreams that take them).
	m.CallsTools = m.Engine == "openai"
	return &m, nil
}

func (s *store) all(ctx context.Context) ([]*modelsv1.Model, error) {
	rows, err := s.db.Query(ctx, `SELECT `+columns+` FROM models ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*modelsv1.Model, error) { return scan(r) })
}

// upsert registers a model; registering an existing name is a new version
// of it (which, among others, invalidates the response cache entries of
// the old one).
func (s *store) upsert(ctx context.Context, m *modelsv1.Model) (*modelsv1.Model, error) {
	upstreams := make([]json.RawMessage, 0, len(m.GetUpstreams()))
	for _, u := range m.GetUpstreams() {
		raw, err := protojson.Marshal(u)
		if err != nil {
			return nil, err
		}
		upstreams = append(upstreams, raw)
	}
	health := []byte("{}")
	if h := m.GetPassiveHealth(); h != nil {
		var err error
		if health, err = protojson.Marshal(h); err != nil {
			return nil, err
		}
	}
	source := m.GetSource()
	if source == "" {
		source = "registry"
	}
	return scan(s.db.QueryRow(ctx, `
		INSERT INTO models (name, engine, engine_model, context_length, max_output_tokens, default_max_tokens, fallbacks,
			owned_by, base_model, fine_tuning_job_id, account_id,
			prompt_price_micros_per_mtok, cache_hit_price_micros_per_mtok, completion_price_micros_per_mtok,
			thinking, deprecated_for, upstreams, passive_health, visible_to, source)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
		ON CONFLICT (name) DO UPDATE SET
			version = models.version + 1, engine = EXCLUDED.engine, engine_model = EXCLUDED.engine_model,
			context_length = EXCLUDED.context_length, max_output_tokens = EXCLUDED.max_output_tokens,
			default_max_tokens = EXCLUDED.default_max_tokens, fallbacks = EXCLUDED.fallbacks,
			owned_by = EXCLUDED.owned_by, base_model = EXCLUDED.base_model, fine_tuning_job_id = EXCLUDED.fine_tuning_job_id,
			account_id = EXCLUDED.account_id, prompt_price_micros_per_mtok = EXCLUDED.prompt_price_micros_per_mtok,
			cache_hit_price_micros_per_mtok = EXCLUDED.cache_hit_price_micros_per_mtok,
			completion_price_micros_per_mtok = EXCLUDED.completion_price_micros_per_mtok,
			thinking = EXCLUDED.thinking, deprecated_for = EXCLUDED.deprecated_for,
			upstreams = EXCLUDED.upstreams, passive_health = EXCLUDED.passive_health,
			visible_to = EXCLUDED.visible_to, source = EXCLUDED.source,
			state = CASE WHEN models.state_reason = $21 THEN 'enabled' ELSE models.state END,
			state_reason = CASE WHEN models.state_reason = $21 THEN '' ELSE models.state_reason END,
			updated_at = now()
		RETURNING `+columns,
		m.GetName(), m.GetEngine(), m.GetEngineModel(), m.GetContextLength(), m.GetMaxOutputTokens(), m.GetDefaultMaxTokens(),
		nonNil(m.GetFallbacks()), ownedBy(m), m.GetBaseModel(), m.GetFineTuningJobId(), m.GetAccountId(),
		m.GetPromptPriceMicrosPerMtok(), m.GetCacheHitPriceMicrosPerMtok(), m.GetCompletionPriceMicrosPerMtok(),
		thinkingName(m.GetThinking()), m.GetDeprecatedFor(), upstreams, health, nonNil(m.GetVisibleTo()), source, removedReason))
}

var errNotFound = errors.New("not found")

func (s *store) setState(ctx context.Context, name string, state modelsv1.ModelState, reason string) (*modelsv1.Model, error) {
	m, err := scan(s.db.QueryRow(ctx, `UPDATE models SET state = $2, state_reason = $3, updated_at = now() WHERE name = $1 RETURNING `+columns,
		name, stateName(state), reason))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNotFound
	}
	return m, err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func ownedBy(m *modelsv1.Model) string {
	if m.GetOwnedBy() != "" {
		return m.GetOwnedBy()
	}
	if m.GetAccountId() != "" {
		return m.GetAccountId()
	}
	return "bulkhead"
}
