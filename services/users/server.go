// Package users owns accounts and tiers, admits requests against their
// quota (concurrency, tokens and requests per minute, budget: one atomic
// Redis script, no overshoot under concurrency), settles them with the
// real usage, and keeps the durable usage ledger in Postgres (one row per
// request id), written from the usage events chat produces to Kafka.
package users

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
)

// accountTTL bounds how stale the limits Reserve reads from memory may be.
const accountTTL = 2 * time.Second

type server struct {
	usersv1.UnimplementedUsersServiceServer
	store  *store
	quota  *quota
	budget *budget
	log    interface {
		WarnContext(context.Context, string, ...any)
	}

	mu       sync.Mutex
	accounts map[string]cachedAccount

	admissions metric.Int64Counter
	active     metric.Int64UpDownCounter
}

type cachedAccount struct {
	a  *usersv1.Account
	at time.Time
}

var _ usersv1.UsersServiceServer = (*server)(nil)

// Setup wires the service.
func Setup() platform.Setup {
	return func(ctx context.Context, rt *platform.Runtime) error {
		db, err := rt.Postgres(ctx, migrations)
		if err != nil {
			return err
		}
		rdb, err := rt.Redis(ctx)
		if err != nil {
			return err
		}
		s := &server{store: &store{db: db}, quota: &quota{rdb: rdb}, log: rt.Log, accounts: map[string]cachedAccount{}}
		if s.admissions, err = rt.Telemetry.Meter.Int64Counter("bulkhead.users.admissions", metric.WithDescription("Reserve outcomes")); err != nil {
			return err
		}
		if s.active, err = rt.Telemetry.Meter.Int64UpDownCounter("bulkhead.users.active_requests", metric.WithDescription("requests admitted and not settled")); err != nil {
			return err
		}
		if s.budget, err = newBudget(rt, db); err != nil {
			return err
		}
		if err := startLedger(rt, db, s.budget); err != nil {
			return err
		}
		usersv1.RegisterUsersServiceServer(rt.GRPC, s)
		return nil
	}
}

func newAccountID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return "acct_" + hex.EncodeToString(b)
}

func (s *server) CreateAccount(ctx context.Context, req *usersv1.CreateAccountRequest) (*usersv1.CreateAccountResponse, error) {
	if req.GetName() == "" || len(req.GetName()) > 200 {
		return nil, platform.InvalidField("name", "is required (at most 200 characters)")
	}
	if req.GetTier() == "" {
		req.Tier = "free"
	}
	if ok, err := s.store.tierExists(ctx, req.GetTier()); err != nil {
		return nil, status.Errorf(codes.Internal, "tiers: %v", err)
	} else if !ok {
		return nil, platform.InvalidField("tier", "tier %q does not exist (free, standard, enterprise)", req.GetTier())
	}
	if err := validLimits(req.GetLimits()); err != nil {
		return nil, err
	}
	if req.GetBalanceMicros() < 0 {
		return nil, platform.InvalidField("balance_micros", "must not be negative")
	}
	id := newAccountID()
	if err := s.store.create(ctx, id, req); err != nil {
		return nil, status.Errorf(codes.Internal, "create account: %v", err)
	}
	a, err := s.store.account(ctx, id)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read account: %v", err)
	}
	return &usersv1.CreateAccountResponse{Account: a}, nil
}

func validLimits(l *usersv1.Limits) error {
	switch {
	case l.GetMaxConcurrentRequests() < 0:
		return platform.InvalidField("limits.max_concurrent_requests", "must not be negative")
	case l.GetTokensPerMinute() < 0:
		return platform.InvalidField("limits.tokens_per_minute", "must not be negative")
	case l.GetRequestsPerMinute() < 0:
		return platform.InvalidField("limits.requests_per_minute", "must not be negative")
	}
	return nil
}

func (s *server) GetAccount(ctx context.Context, req *usersv1.GetAccountRequest) (*usersv1.GetAccountResponse, error) {
	a, err := s.store.account(ctx, req.GetAccountId())
	if errors.Is(err, errNoAccount) {
		return nil, status.Errorf(codes.NotFound, "account %q does not exist", req.GetAccountId())
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "accounts: %v", err)
	}
	if err := s.settledBalance(ctx, a); err != nil {
		return nil, err
	}
	return &usersv1.GetAccountResponse{Account: a}, nil
}

// settledBalance reports the balance after every settled request: the
// mirror's, when it is loaded, is ahead of the database by the usage
// events not consumed yet.
func (s *server) settledBalance(ctx context.Context, a *usersv1.Account) error {
	b, ok, err := s.quota.balance(ctx, a.GetId())
	if err != nil {
		return status.Errorf(codes.Unavailable, "quota store: %v", err)
	}
	if ok {
		a.BalanceMicros = b
	}
	return nil
}

func (s *server) UpdateAccount(ctx context.Context, req *usersv1.UpdateAccountRequest) (*usersv1.UpdateAccountResponse, error) {
	if req.Tier != nil {
		if ok, err := s.store.tierExists(ctx, req.GetTier()); err != nil {
			return nil, status.Errorf(codes.Internal, "tiers: %v", err)
		} else if !ok {
			return nil, platform.InvalidField("tier", "tier %q does not exist", req.GetTier())
		}
	}
	if err := validLimits(req.GetLimits()); err != nil {
		return nil, err
	}
	err := s.store.update(ctx, req)
	if errors.Is(err, errNoAccount) {
		return nil, status.Errorf(codes.NotFound, "account %q does not exist", req.GetAccountId())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "update account: %v", err)
	}
	if d := req.GetBalanceDeltaMicros(); d != 0 {
		if err := s.quota.adjust(ctx, req.GetAccountId(), d); err != nil {
			s.log.WarnContext(ctx, "balance mirror", "error", err)
		}
	}
	s.mu.Lock()
	delete(s.accounts, req.GetAccountId())
	s.mu.Unlock()
	return s.getAccountResponse(ctx, req.GetAccountId())
}

func (s *server) getAccountResponse(ctx context.Context, id string) (*usersv1.UpdateAccountResponse, error) {
	a, err := s.store.account(ctx, id)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read account: %v", err)
	}
	if err := s.settledBalance(ctx, a); err != nil {
		return nil, err
	}
	return &usersv1.UpdateAccountResponse{Account: a}, nil
}

// account reads an account's limits through a short in-memory cache:
// Reserve is on every request's path.
func (s *server) account(ctx context.Context, id string) (*usersv1.Account, error) {
	s.mu.Lock()
	c, ok := s.accounts[id]
	s.mu.Unlock()
	if ok && time.Since(c.at) < accountTTL {
		return c.a, nil
	}
	a, err := s.store.account(ctx, id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.accounts[id] = cachedAccount{a: a, at: time.Now()}
	s.mu.Unlock()
	return a, nil
}

// Reserve admits a request: RESOURCE_EXHAUSTED (concurrency, tokens or
// requests per minute, with RetryInfo) or FAILED_PRECONDITION (budget)
// with the reason as ErrorInfo.
func (s *server) Reserve(ctx context.Context, req *usersv1.ReserveRequest) (*usersv1.ReserveResponse, error) {
	switch {
	case req.GetAccountId() == "":
		return nil, platform.InvalidField("account_id", "is required")
	case req.GetRequestId() == "":
		return nil, platform.InvalidField("request_id", "is required")
	case req.GetMaxTokens() <= 0:
		return nil, platform.InvalidField("max_tokens", "must be positive")
	case req.GetHoldMicros() < 0:
		return nil, platform.InvalidField("hold_micros", "must not be negative")
	}
	a, err := s.account(ctx, req.GetAccountId())
	if errors.Is(err, errNoAccount) {
		return nil, status.Errorf(codes.NotFound, "account %q does not exist", req.GetAccountId())
	}
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "accounts: %v", err)
	}
	if a.Disabled {
		return nil, status.Error(codes.PermissionDenied, "the account is disabled")
	}
	l := a.GetLimits()
	now := time.Now()
	id, verdict, err := s.quota.reserve(ctx, a.Id, req.GetRequestId(), req.GetHoldMicros(), req.GetMaxTokens(),
		limits{concurrent: int64(l.GetMaxConcurrentRequests()), tpm: l.GetTokensPerMinute(), rpm: l.GetRequestsPerMinute()},
		func() (int64, error) {
			fresh, err := s.store.account(ctx, a.Id)
			return fresh.GetBalanceMicros(), err
		}, now)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "quota store: %v", err)
	}
	s.admissions.Add(ctx, 1, metric.WithAttributes(attribute.String("verdict", verdict), attribute.String("tier", a.Tier)))
	nextMinute := time.Until(now.Truncate(time.Minute).Add(time.Minute))
	switch verdict {
	case "OK":
		s.active.Add(ctx, 1, metric.WithAttributes(attribute.String("tier", a.Tier)))
		return &usersv1.ReserveResponse{ReservationId: id, ExpiresAt: timestamppb.New(now.Add(ReservationTTL)), Limits: l}, nil
	case apierr.ReasonConcurrency:
		return nil, platform.Reason(codes.ResourceExhausted, verdict, time.Second, "Too many concurrent requests for this account (limit "+itoa(int64(l.GetMaxConcurrentRequests()))+")")
	case apierr.ReasonTPM:
		return nil, platform.Reason(codes.ResourceExhausted, verdict, nextMinute, "Rate limit reached: tokens per minute (limit "+itoa(l.GetTokensPerMinute())+")")
	case apierr.ReasonRPM:
		return nil, platform.Reason(codes.ResourceExhausted, verdict, nextMinute, "Rate limit reached: requests per minute (limit "+itoa(l.GetRequestsPerMinute())+")")
	case apierr.ReasonBudget:
		s.budget.exhausted(a.Id)
		return nil, platform.Reason(codes.FailedPrecondition, verdict, 0, "Insufficient Balance: top up the account to continue")
	}
	return nil, status.Errorf(codes.Internal, "quota verdict %q", verdict)
}

// Commit settles the reservation with the real usage: the mirrored
// balance is debited and the unused tokens given back, at once, in Redis.
// The ledger and the database's balance are written from the request's
// usage event (ledger.go), off the request's path. It is idempotent by
// reservation.
func (s *server) Commit(ctx context.Context, req *usersv1.CommitRequest) (*usersv1.CommitResponse, error) {
	_, _, requestID, err := parseReservationID(req.GetReservationId())
	if err != nil {
		return nil, platform.InvalidField("reservation_id", "%v", err)
	}
	if req.GetRequestId() != requestID {
		return nil, platform.InvalidField("request_id", "does not match the reservation's (%q)", requestID)
	}
	u := req.GetUsage()
	if u.GetPromptTokens() < 0 || u.GetCompletionTokens() < 0 || u.GetCostMicros() < 0 ||
		u.GetPromptCacheHitTokens()+u.GetPromptCacheMissTokens() != u.GetPromptTokens() {
		return nil, platform.InvalidField("usage", "token counts must be non-negative, with cache hit + miss = prompt")
	}
	found, balance, err := s.quota.settle(ctx, req.GetReservationId(), u.GetCostMicros(), u.GetPromptTokens()+u.GetCompletionTokens())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "quota store: %v", err)
	}
	if found {
		s.active.Add(ctx, -1)
	}
	return &usersv1.CommitResponse{BalanceMicros: balance}, nil
}

// Refund releases a reservation that served nothing.
func (s *server) Refund(ctx context.Context, req *usersv1.RefundRequest) (*usersv1.RefundResponse, error) {
	if _, _, _, err := parseReservationID(req.GetReservationId()); err != nil {
		return nil, platform.InvalidField("reservation_id", "%v", err)
	}
	found, _, err := s.quota.settle(ctx, req.GetReservationId(), 0, 0)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "quota store: %v", err)
	}
	if found {
		s.active.Add(ctx, -1)
	}
	return &usersv1.RefundResponse{}, nil
}

func (s *server) GetUsage(ctx context.Context, req *usersv1.GetUsageRequest) (*usersv1.GetUsageResponse, error) {
	if req.GetAccountId() == "" {
		return nil, platform.InvalidField("account_id", "is required")
	}
	from, to := time.Unix(0, 0), time.Now().Add(time.Minute)
	if req.StartTime != nil {
		from = req.GetStartTime().AsTime()
	}
	if req.EndTime != nil {
		to = req.GetEndTime().AsTime()
	}
	if !from.Before(to) {
		return nil, platform.InvalidField("end_time", "must be after start_time")
	}
	out, err := s.store.usage(ctx, req.GetAccountId(), from, to)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "ledger: %v", err)
	}
	return out, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
