package users

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-mesh/bulkhead/services/events"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	eventsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/events/v1"
)

// ledger consumes the usage events (services/events: Usage) into the
// usage ledger and the accounts' balances, in the users' consumer group:
// a batch of records is written in one transaction, and its offsets are
// committed only after that transaction. A request id already in the
// ledger is not written or charged again, so a redelivered or duplicated
// event changes nothing.
type ledger struct {
	cl     *kgo.Client
	budget *budget
	db     *pgxpool.Pool
	log    *slog.Logger

	events metric.Int64Counter
	delay  metric.Float64Histogram
	done   chan struct{}
}

func startLedger(rt *platform.Runtime, db *pgxpool.Pool, b *budget) error {
	cl, err := rt.Kafka(
		kgo.ConsumerGroup(events.Usage.Group("users")),
		kgo.ConsumeTopics(events.Usage.Name),
		kgo.DisableAutoCommit(),
		// A partition is not taken away between a poll and the commit of
		// what it returned.
		kgo.BlockRebalanceOnPoll(),
	)
	if err != nil {
		return err
	}
	l := &ledger{cl: cl, budget: b, db: db, log: rt.Log, done: make(chan struct{})}
	if l.events, err = rt.Telemetry.Meter.Int64Counter("bulkhead.users.usage_events", metric.WithDescription("usage events consumed, by result (recorded, duplicate, unknown_account, malformed)")); err != nil {
		return err
	}
	if l.delay, err = rt.Telemetry.Meter.Float64Histogram("bulkhead.users.usage_event_delay", metric.WithUnit("s"),
		metric.WithDescription("time from a request's end to its usage in the ledger"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	go l.run(ctx)
	// Registered after the client, so it runs before the client closes.
	rt.OnStop(func() error { cancel(); <-l.done; return nil })
	return nil
}

func (l *ledger) run(ctx context.Context) {
	defer close(l.done)
	// Whatever the way out, the client may leave the group when it closes.
	defer l.cl.AllowRebalance()
	for {
		fs := l.cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(topic string, partition int32, err error) {
			l.log.Warn("usage events: fetch", "topic", topic, "partition", partition, "error", err)
		})
		if recs := fs.Records(); len(recs) > 0 {
			if !l.write(ctx, recs) {
				return
			}
			// Offsets after the transaction: a crash in between redelivers
			// the batch, which the ledger's key makes harmless.
			if err := l.cl.CommitRecords(ctx, recs...); err != nil && ctx.Err() == nil {
				l.log.Warn("usage events: commit offsets (the batch will be redelivered, and change nothing)", "error", err)
			}
		}
		l.cl.AllowRebalance()
	}
}

// write applies a batch, trying again until the database takes it or
// the consumer stops (false).
func (l *ledger) write(ctx context.Context, recs []*kgo.Record) bool {
	backoff := 100 * time.Millisecond
	for {
		results, err := l.apply(ctx, recs)
		if err == nil {
			now := time.Now()
			for i, r := range results {
				l.events.Add(ctx, 1, metric.WithAttributes(attribute.String("result", r.result)))
				if r.ev != nil && r.result == "recorded" {
					l.delay.Record(ctx, now.Sub(r.ev.GetFinishedAt().AsTime()).Seconds())
				}
				if r.result == "malformed" || r.result == "unknown_account" {
					l.log.Error("usage events: not recorded", "result", r.result, "error", r.err, "partition", recs[i].Partition, "offset", recs[i].Offset)
				}
			}
			return true
		}
		l.log.Warn("usage events: ledger (trying again)", "error", err, "records", len(recs), "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

type applied struct {
	ev     *eventsv1.UsageEvent
	result string
	err    error
}

// apply writes the batch's events in one transaction.
func (l *ledger) apply(ctx context.Context, recs []*kgo.Record) ([]applied, error) {
	out := make([]applied, len(recs))
	b := &pgx.Batch{}
	var queued []int
	for i, r := range recs {
		ev := &eventsv1.UsageEvent{}
		if err := proto.Unmarshal(r.Value, ev); err != nil {
			out[i] = applied{result: "malformed", err: err}
			continue
		}
		if err := validEvent(ev); err != nil {
			out[i] = applied{ev: ev, result: "malformed", err: err}
			continue
		}
		out[i].ev = ev
		queued = append(queued, i)
		b.Queue(recordUsage, ev.GetRequestId(), ev.GetAccountId(), ev.GetModel(), ev.GetPromptTokens(), ev.GetCompletionTokens(),
			ev.GetPromptCacheHitTokens(), ev.GetPromptCacheMissTokens(), ev.GetCostMicros(), ev.GetFinishedAt().AsTime(),
			ev.GetKeyId(), ev.GetModelVersion(), ev.GetAskedModel(), ev.GetReasoningTokens(), ev.GetOutcome(), ev.GetFinishReason(),
			ev.GetCacheHit(), ev.GetStartedAt().AsTime(), ev.GetProducer(), int64(ev.GetSequence()))
	}
	if len(queued) == 0 {
		return out, nil
	}
	err := pgx.BeginFunc(ctx, l.db, func(tx pgx.Tx) error {
		br := tx.SendBatch(ctx, b)
		for _, i := range queued {
			var inserted bool
			err := br.QueryRow().Scan(&inserted)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				out[i].result, out[i].err = "unknown_account", fmt.Errorf("account %q does not exist", out[i].ev.GetAccountId())
			case err != nil:
				br.Close()
				return err
			case inserted:
				out[i].result = "recorded"
			default:
				out[i].result = "duplicate"
			}
		}
		if err := br.Close(); err != nil {
			return err
		}
		// Thresholds crossed by what was recorded, reported before the
		// transaction commits: a notification that cannot be produced
		// makes the batch be tried again (its id makes a repeat harmless).
		var touched []string
		for _, i := range queued {
			if a := out[i].ev.GetAccountId(); out[i].result == "recorded" && !slices.Contains(touched, a) {
				touched = append(touched, a)
			}
		}
		ns, err := crossed(ctx, tx, touched, false)
		if err != nil {
			return err
		}
		return l.budget.send(ctx, ns)
	})
	return out, err
}

// recordUsage writes one ledger row and debits the balance, once per
// request id, in one statement.
const recordUsage = `
	WITH ins AS (
		INSERT INTO usage_ledger (request_id, account_id, model, prompt_tokens, completion_tokens,
			prompt_cache_hit_tokens, prompt_cache_miss_tokens, cost_micros, created_at,
			key_id, model_version, asked_model, reasoning_tokens, outcome, finish_reason, cache_hit, started_at, producer, sequence)
		SELECT $1::text, $2::text, $3::text, $4::bigint, $5::bigint, $6::bigint, $7::bigint, $8::bigint, $9::timestamptz,
			$10::text, $11::bigint, $12::text, $13::bigint, $14::text, $15::text, $16::boolean, $17::timestamptz, $18::text, $19::bigint
		WHERE EXISTS (SELECT 1 FROM accounts WHERE id = $2::text)
		ON CONFLICT (request_id) DO NOTHING
		RETURNING cost_micros)
	UPDATE accounts SET balance_micros = balance_micros - COALESCE((SELECT cost_micros FROM ins), 0)
	WHERE id = $2::text
	RETURNING EXISTS (SELECT 1 FROM ins)`

func validEvent(ev *eventsv1.UsageEvent) error {
	switch {
	case ev.GetRequestId() == "":
		return errors.New("request_id is empty")
	case ev.GetAccountId() == "":
		return errors.New("account_id is empty")
	case ev.GetPromptTokens() < 0 || ev.GetCompletionTokens() < 0 || ev.GetCostMicros() < 0 ||
		ev.GetPromptCacheHitTokens()+ev.GetPromptCacheMissTokens() != ev.GetPromptTokens():
		return errors.New("token counts must be non-negative, with cache hit + miss = prompt")
	case ev.GetFinishedAt() == nil:
		return errors.New("finished_at is missing")
	}
	return nil
}
