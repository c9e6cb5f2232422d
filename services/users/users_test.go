package users_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	"github.com/bulkhead-mesh/bulkhead/services/events"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	eventsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/events/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
	"github.com/bulkhead-mesh/bulkhead/services/users"
)

func TestQuota(t *testing.T) {
	s := stack.New(t)
	// Two replicas: admission is atomic across them, not per process.
	s.StartService("users", users.Setup(), stack.Options{Instance: "users-1"})
	s.StartService("users", users.Setup(), stack.Options{Instance: "users-2"})
	c := usersv1.NewUsersServiceClient(s.Dial("users"))
	ctx := t.Context()

	acct, err := c.CreateAccount(ctx, &usersv1.CreateAccountRequest{Name: "acme", Tier: "standard", BalanceMicros: 5000,
		Limits: &usersv1.Limits{MaxConcurrentRequests: 1000, TokensPerMinute: 1 << 40, RequestsPerMinute: 1 << 40}}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	id := acct.Account.Id

	t.Run("budget admits exactly what it covers under concurrency", func(t *testing.T) {
		// 200 concurrent reservations of 100 micros against 5000: exactly 50.
		var mu sync.Mutex
		var wg sync.WaitGroup
		var ok []string
		refused := map[string]int{}
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := c.Reserve(ctx, &usersv1.ReserveRequest{AccountId: id, RequestId: fmt.Sprintf("req-%d", i), Model: "m", MaxTokens: 10, HoldMicros: 100})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					reason, _, _ := platform.Details(err)
					refused[status.Code(err).String()+"/"+reason]++
					return
				}
				ok = append(ok, r.ReservationId)
			}()
		}
		wg.Wait()
		if len(ok) != 50 || refused["FailedPrecondition/"+apierr.ReasonBudget] != 150 {
			t.Fatalf("%d admitted, refused %v; want 50 and 150 for the budget", len(ok), refused)
		}
		// Settle: 25 commits of 100, 25 refunds; the balance is 2500 after.
		// What chat does: the usage event of each served request, here
		// produced twice (a redelivery changes nothing), then the commit.
		chat := s.KafkaAs("chat", kgo.DefaultProduceTopic(events.Usage.Name))
		for i, res := range ok {
			if i%2 == 1 {
				ev, _ := proto.Marshal(&eventsv1.UsageEvent{RequestId: requestID(res), AccountId: id, Model: "m",
					PromptTokens: 4, PromptCacheMissTokens: 4, CompletionTokens: 6, CostMicros: 100, FinishedAt: timestamppb.Now()})
				for range 2 {
					if err := chat.ProduceSync(ctx, &kgo.Record{Key: []byte(id), Value: ev}).FirstErr(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if i%2 == 0 {
				_, err = c.Refund(ctx, &usersv1.RefundRequest{ReservationId: res})
			} else {
				req := &usersv1.CommitRequest{ReservationId: res, RequestId: requestID(res), Model: "m",
					Usage: &usersv1.Usage{PromptTokens: 4, CompletionTokens: 6, TotalTokens: 10, PromptCacheMissTokens: 4, CostMicros: 100}}
				_, err = c.Commit(ctx, req)
				if err == nil {
					// A retried commit changes nothing.
					_, err = c.Commit(ctx, req)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		a, err := c.GetAccount(ctx, &usersv1.GetAccountRequest{AccountId: id})
		if err != nil || a.Account.BalanceMicros != 2500 {
			t.Fatalf("balance %d (%v); want 2500", a.GetAccount().GetBalanceMicros(), err)
		}
		testenv.Eventually(t, 30*time.Second, "the usage events in the ledger", func() error {
			u, err := c.GetUsage(ctx, &usersv1.GetUsageRequest{AccountId: id})
			if err != nil {
				return err
			}
			return testenv.Until(u.Total.Requests == 25 && u.Total.TotalTokens == 250 && u.Total.CostMicros == 2500,
				"usage %v; want 25 requests, 250 tokens, 2500 micros", u.GetTotal())
		})
		// What was freed is admitted again: 25 more fit exactly.
		n := 0
		for i := range 30 {
			if _, err := c.Reserve(ctx, &usersv1.ReserveRequest{AccountId: id, RequestId: fmt.Sprintf("again-%d", i), Model: "m", MaxTokens: 10, HoldMicros: 100}); err == nil {
				n++
			}
		}
		if n != 25 {
			t.Fatalf("%d admitted after settling; want 25", n)
		}
	})

	t.Run("concurrency limit", func(t *testing.T) {
		a, err := c.CreateAccount(ctx, &usersv1.CreateAccountRequest{Name: "small", Tier: "free", BalanceMicros: 1 << 40})
		if err != nil {
			t.Fatal(err)
		}
		// free: 4 at once.
		for i := range 4 {
			if _, err := c.Reserve(ctx, &usersv1.ReserveRequest{AccountId: a.Account.Id, RequestId: fmt.Sprint(i), MaxTokens: 1}); err != nil {
				t.Fatal(err)
			}
		}
		_, err = c.Reserve(ctx, &usersv1.ReserveRequest{AccountId: a.Account.Id, RequestId: "5th", MaxTokens: 1})
		reason, _, retry := platform.Details(err)
		if status.Code(err) != codes.ResourceExhausted || reason != apierr.ReasonConcurrency || retry == 0 {
			t.Fatalf("5th concurrent request: %v (%s, retry %v)", err, reason, retry)
		}
		// The same request reserved again (a retried call) is not a 5th.
		if _, err := c.Reserve(ctx, &usersv1.ReserveRequest{AccountId: a.Account.Id, RequestId: "0", MaxTokens: 1}); err != nil {
			t.Fatalf("retried reservation: %v", err)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for field, call := range map[string]func() error{
			"tier": func() error {
				_, err := c.CreateAccount(ctx, &usersv1.CreateAccountRequest{Name: "x", Tier: "gold"})
				return err
			},
			"max_tokens": func() error {
				_, err := c.Reserve(ctx, &usersv1.ReserveRequest{AccountId: id, RequestId: "r"})
				return err
			},
			"reservation_id": func() error { _, err := c.Refund(ctx, &usersv1.RefundRequest{ReservationId: "nope"}); return err },
		} {
			_, f, _ := platform.Details(call())
			if f != field {
				t.Errorf("want an error on %s, got field %q", field, f)
			}
		}
	})
}

func requestID(reservation string) string {
	// account/minute/request
	n := 0
	for i, c := range reservation {
		if c == '/' {
			n++
			if n == 2 {
				return reservation[i+1:]
			}
		}
	}
	return ""
}
