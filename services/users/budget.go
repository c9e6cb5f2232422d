package users

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bulkhead-mesh/bulkhead/services/events"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	eventsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/events/v1"
)

// budget reports, once per funding of an account (its creation or a
// top-up), that it spent 80 % and 100 % of it (notifications for
// webhooks: budget.threshold.80 and budget.threshold.100). 80 % is seen
// by the ledger when the balance falls to a fifth of the funding; 100 %
// by the ledger when it reaches 0, or by Reserve when it refuses a
// request for the budget (admission never lets the balance go below what
// the next request could cost, so 0 itself may never be reached).
type budget struct {
	db  *pgxpool.Pool
	cl  *kgo.Client
	log *slog.Logger

	mu    sync.Mutex
	tried map[string]time.Time // accounts refused lately (exhausted)
}

func newBudget(rt *platform.Runtime, db *pgxpool.Pool) (*budget, error) {
	cl, err := rt.KafkaProducer(events.Notifications.Name)
	if err != nil {
		return nil, err
	}
	return &budget{db: db, cl: cl, log: rt.Log, tried: map[string]time.Time{}}, nil
}

// thresholdsSQL marks the thresholds an account's balance has crossed
// and not reported yet, and returns those it just marked.
const thresholdsSQL = `
	WITH old AS (SELECT id, alerted_80, alerted_100 FROM accounts WHERE id = $1 FOR UPDATE)
	UPDATE accounts a SET
		alerted_80 = a.alerted_80 OR a.balance_micros * 5 <= a.budget_base_micros,
		alerted_100 = a.alerted_100 OR a.balance_micros <= 0 OR $2
	FROM old WHERE a.id = old.id AND a.budget_base_micros > 0
		AND ((NOT old.alerted_80 AND a.balance_micros * 5 <= a.budget_base_micros) OR (NOT old.alerted_100 AND (a.balance_micros <= 0 OR $2)))
	RETURNING NOT old.alerted_80 AND a.alerted_80, NOT old.alerted_100 AND a.alerted_100, a.balance_micros, a.budget_base_micros, a.budget_generation`

// crossed marks and returns the notifications of the thresholds the
// accounts crossed, in tx (exhausted: the budget refused a request).
func crossed(ctx context.Context, tx pgx.Tx, accounts []string, exhausted bool) ([]*eventsv1.Notification, error) {
	var out []*eventsv1.Notification
	for _, a := range accounts {
		var at80, at100 bool
		var balance, base int64
		var gen int32
		err := tx.QueryRow(ctx, thresholdsSQL, a, exhausted).Scan(&at80, &at100, &balance, &base, &gen)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, t := range []struct {
			hit     bool
			percent int
		}{{at80, 80}, {at100, 100}} {
			if t.hit {
				out = append(out, thresholdNotification(a, t.percent, balance, base, gen))
			}
		}
	}
	return out, nil
}

func thresholdNotification(account string, percent int, balance, base int64, gen int32) *eventsv1.Notification {
	data, _ := json.Marshal(map[string]any{"account_id": account, "threshold_percent": percent, "balance_micros": balance, "budget_micros": base})
	return &eventsv1.Notification{
		// One per threshold and funding, however often it is seen.
		Id:   fmt.Sprintf("evt_budget_%s_%d_%d", account, gen, percent),
		Type: fmt.Sprintf("budget.threshold.%d", percent), AccountId: account, CreatedAt: timestamppb.Now(), DataJson: string(data),
	}
}

// send produces notifications (keyed by account) and waits for them.
func (b *budget) send(ctx context.Context, ns []*eventsv1.Notification) error {
	recs := make([]*kgo.Record, 0, len(ns))
	for _, n := range ns {
		v, err := proto.Marshal(n)
		if err != nil {
			return err
		}
		recs = append(recs, &kgo.Record{Key: []byte(n.GetAccountId()), Value: v})
	}
	if len(recs) == 0 {
		return nil
	}
	return b.cl.ProduceSync(ctx, recs...).FirstErr()
}

// exhausted reports, off the request's path, that Reserve refused an
// account for its budget (at most one try per account every 5 s).
func (b *budget) exhausted(account string) {
	b.mu.Lock()
	if t, ok := b.tried[account]; ok && time.Since(t) < 5*time.Second {
		b.mu.Unlock()
		return
	}
	b.tried[account] = time.Now()
	for a, t := range b.tried {
		if time.Since(t) > time.Minute {
			delete(b.tried, a)
		}
	}
	b.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Marked and produced in one transaction: a notification that could
		// not be produced is tried again by the next refusal.
		err := pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
			ns, err := crossed(ctx, tx, []string{account}, true)
			if err != nil {
				return err
			}
			return b.send(ctx, ns)
		})
		if err != nil {
			b.log.Warn("budget: report an exhausted budget (tried again at the next refusal)", "account", account, "error", err)
		}
	}()
}
