package chat

import (
	"context"
	"embed"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// turn is one completion to record: the request's last message and the
// reply.
type turn struct {
	conversation, account, model, requestID string
	userRole, userContent                   string
	reply, finish                           string
}

// recorder writes turns in the background, off the request path, and
// flushes what is queued at stop.
type recorder struct {
	db    *pgxpool.Pool
	log   *slog.Logger
	queue chan turn
	wg    sync.WaitGroup
}

func newRecorder(db *pgxpool.Pool, log *slog.Logger) *recorder {
	r := &recorder{db: db, log: log, queue: make(chan turn, 4096)}
	r.wg.Add(1)
	go r.run()
	return r
}

// add queues a turn; when the queue is full the turn is dropped and
// logged (the ledger, not this, is what billing relies on).
func (r *recorder) add(t turn) {
	select {
	case r.queue <- t:
	default:
		r.log.Warn("conversation store is behind: turn not recorded", "request_id", t.requestID)
	}
}

func (r *recorder) close() error {
	close(r.queue)
	r.wg.Wait()
	return nil
}

// maxBatch bounds the turns written in one transaction.
const maxBatch = 256

// run writes what is queued in batches: one transaction, one round trip
// of statements, for everything that arrived since the last write.
func (r *recorder) run() {
	defer r.wg.Done()
	for t := range r.queue {
		batch := []turn{t}
	drain:
		for len(batch) < maxBatch {
			select {
			case t, ok := <-r.queue:
				if !ok {
					break drain
				}
				batch = append(batch, t)
			default:
				break drain
			}
		}
		if err := r.write(context.Background(), batch); err != nil {
			r.log.Warn("recording conversation turns", "turns", len(batch), "error", err)
		}
	}
}

func (r *recorder) write(ctx context.Context, turns []turn) error {
	var convIDs, accounts, models []string
	seen := map[string]bool{}
	var mConv, mReq, mRole, mContent, mFinish []string
	var mSeq []int32
	for _, t := range turns {
		if !seen[t.conversation] {
			seen[t.conversation] = true
			convIDs, accounts, models = append(convIDs, t.conversation), append(accounts, t.account), append(models, t.model)
		}
		mConv = append(mConv, t.conversation, t.conversation)
		mReq = append(mReq, t.requestID, t.requestID)
		mSeq = append(mSeq, 0, 1)
		mRole = append(mRole, t.userRole, "assistant")
		mContent = append(mContent, t.userContent, t.reply)
		mFinish = append(mFinish, "", t.finish)
	}
	return pgx.BeginFunc(ctx, r.db, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO conversations (id, account_id, model)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
			ON CONFLICT (id) DO UPDATE SET updated_at = now(), model = EXCLUDED.model`, convIDs, accounts, models)
		b.Queue(`INSERT INTO messages (conversation_id, request_id, seq, role, content, finish_reason)
			SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[])
			ON CONFLICT DO NOTHING`, mConv, mReq, mSeq, mRole, mContent, mFinish)
		return tx.SendBatch(ctx, b).Close()
	})
}
