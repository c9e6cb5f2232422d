package users

import (
	"context"
	"embed"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
)

//go:embed migrations/*.sql
var migrations embed.FS

type store struct{ db *pgxpool.Pool }

var errNoAccount = errors.New("no such account")

// account returns the account with its effective limits (its own, else
// its tier's).
func (s *store) account(ctx context.Context, id string) (*usersv1.Account, error) {
	var a usersv1.Account
	var l usersv1.Limits
	var created time.Time
	err := s.db.QueryRow(ctx, `
		SELECT a.id, a.name, a.email, a.tier, a.balance_micros, a.disabled, a.created_at,
		       COALESCE(a.max_concurrent_requests, t.max_concurrent_requests),
		       COALESCE(a.tokens_per_minute, t.tokens_per_minute),
		       COALESCE(a.requests_per_minute, t.requests_per_minute)
		FROM accounts a JOIN tiers t ON t.name = a.tier WHERE a.id = $1`, id).
		Scan(&a.Id, &a.Name, &a.Email, &a.Tier, &a.BalanceMicros, &a.Disabled, &created,
			&l.MaxConcurrentRequests, &l.TokensPerMinute, &l.RequestsPerMinute)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNoAccount
	}
	if err != nil {
		return nil, err
	}
	a.Limits = &l
	a.CreatedAt = timestamppb.New(created)
	return &a, nil
}

func (s *store) tierExists(ctx context.Context, tier string) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tiers WHERE name = $1)`, tier).Scan(&ok)
	return ok, err
}

// nullable maps 0 (not set) to NULL (follow the tier).
func nullable[T int32 | int64](v T) *T {
	if v == 0 {
		return nil
	}
	return &v
}

func (s *store) create(ctx context.Context, id string, req *usersv1.CreateAccountRequest) error {
	l := req.GetLimits()
	_, err := s.db.Exec(ctx, `INSERT INTO accounts (id, name, email, tier, max_concurrent_requests, tokens_per_minute, requests_per_minute, balance_micros, budget_base_micros)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint, GREATEST($8::bigint, 0))`, id, req.GetName(), req.GetEmail(), req.GetTier(),
		nullable(l.GetMaxConcurrentRequests()), nullable(l.GetTokensPerMinute()), nullable(l.GetRequestsPerMinute()), req.GetBalanceMicros())
	return err
}

func (s *store) update(ctx context.Context, req *usersv1.UpdateAccountRequest) error {
	l := req.GetLimits()
	tag, err := s.db.Exec(ctx, `UPDATE accounts SET
			tier = COALESCE($2, tier),
			max_concurrent_requests = CASE WHEN $3::boolean THEN $4 ELSE max_concurrent_requests END,
			tokens_per_minute = CASE WHEN $3::boolean THEN $5 ELSE tokens_per_minute END,
			requests_per_minute = CASE WHEN $3::boolean THEN $6 ELSE requests_per_minute END,
			balance_micros = balance_micros + $7,
			disabled = COALESCE($8, disabled),
			-- A top-up is a new budget, whose thresholds are reported again.
			budget_base_micros = CASE WHEN $7::bigint > 0 THEN GREATEST(balance_micros + $7::bigint, 0) ELSE budget_base_micros END,
			budget_generation = CASE WHEN $7::bigint > 0 THEN budget_generation + 1 ELSE budget_generation END,
			alerted_80 = CASE WHEN $7::bigint > 0 THEN false ELSE alerted_80 END,
			alerted_100 = CASE WHEN $7::bigint > 0 THEN false ELSE alerted_100 END
		WHERE id = $1`, req.GetAccountId(), req.Tier, l != nil,
		nullable(l.GetMaxConcurrentRequests()), nullable(l.GetTokensPerMinute()), nullable(l.GetRequestsPerMinute()),
		req.GetBalanceDeltaMicros(), req.Disabled)
	if err == nil && tag.RowsAffected() == 0 {
		return errNoAccount
	}
	return err
}

func (s *store) usage(ctx context.Context, account string, from, to time.Time) (*usersv1.GetUsageResponse, error) {
	rows, err := s.db.Query(ctx, `SELECT model, count(*), sum(prompt_tokens), sum(completion_tokens),
			sum(prompt_cache_hit_tokens), sum(prompt_cache_miss_tokens), sum(cost_micros)
		FROM usage_ledger WHERE account_id = $1 AND created_at >= $2 AND created_at < $3
		GROUP BY model ORDER BY model`, account, from, to)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := &usersv1.GetUsageResponse{Total: &usersv1.Usage{}}
	for rows.Next() {
		var m usersv1.ModelUsage
		u := &usersv1.Usage{}
		if err := rows.Scan(&m.Model, &u.Requests, &u.PromptTokens, &u.CompletionTokens, &u.PromptCacheHitTokens, &u.PromptCacheMissTokens, &u.CostMicros); err != nil {
			return nil, err
		}
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
		m.Usage = u
		out.ByModel = append(out.ByModel, &m)
		t := out.Total
		t.Requests += u.Requests
		t.PromptTokens += u.PromptTokens
		t.CompletionTokens += u.CompletionTokens
		t.TotalTokens += u.TotalTokens
		t.PromptCacheHitTokens += u.PromptCacheHitTokens
		t.PromptCacheMissTokens += u.PromptCacheMissTokens
		t.CostMicros += u.CostMicros
	}
	return out, rows.Err()
}
