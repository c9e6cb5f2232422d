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

func (r *recorder) run() {
	defer r.wg.Done()
	for t := range r.queue {
		if err := r.write(context.Background(), t); err != nil {
			r.log.Warn("recording a conversation turn", "request_id", t.requestID, "error", err)
		}
	}
}

func (r *recorder) write(ctx context.Context, t turn) error {
	return pgx.BeginFunc(ctx, r.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO conversations (id, account_id, model) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO UPDATE SET updated_at = now(), model = EXCLUDED.model`, t.conversation, t.account, t.model); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO messages (conversation_id, request_id, seq, role, content, finish_reason)
			VALUES ($1, $2, 0, $3, $4, ''), ($1, $2, 1, 'assistant', $5, $6) ON CONFLICT DO NOTHING`,
			t.conversation, t.requestID, t.userRole, t.userContent, t.reply, t.finish)
		return err
	})
}
