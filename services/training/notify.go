package training

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bulkhead-mesh/bulkhead/services/events"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	eventsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/events/v1"
)

// notifier puts the end of every job on the notifications topic
// (fine_tuning.job.succeeded, .failed, .cancelled) for webhooks: jobs that
// ended and are not marked notified are produced, then marked, so a
// notification is sent at least once whatever stops in between (its id,
// the job's and its status, makes a repeat harmless).
type notifier struct {
	st   *store
	cl   *kgo.Client
	log  *slog.Logger
	kick chan struct{}
}

func startNotifier(rt *platform.Runtime, st *store, cl *kgo.Client) *notifier {
	n := &notifier{st: st, cl: cl, log: rt.Log, kick: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if err := n.flush(ctx); err != nil && ctx.Err() == nil {
				n.log.Warn("fine-tuning notifications (tried again)", "error", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-n.kick:
			case <-time.After(2 * time.Second):
			}
		}
	}()
	rt.OnStop(func() error { cancel(); <-done; return nil })
	return n
}

// ended tells the notifier a job ended.
func (n *notifier) ended() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *notifier) flush(ctx context.Context) error {
	rows, err := n.st.db.Query(ctx, `SELECT id, account_id, status, fine_tuned_model, error_code, finished_at FROM jobs
		WHERE NOT notified AND status IN ('succeeded', 'failed', 'cancelled') ORDER BY finished_at LIMIT 100`)
	if err != nil {
		return err
	}
	type ended struct {
		id, account, status, model, code string
		at                               time.Time
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ended, error) {
		var e ended
		var at *time.Time
		err := r.Scan(&e.id, &e.account, &e.status, &e.model, &e.code, &at)
		if at != nil {
			e.at = *at
		}
		return e, err
	})
	if err != nil || len(jobs) == 0 {
		return err
	}
	recs := make([]*kgo.Record, 0, len(jobs))
	for _, j := range jobs {
		data := map[string]any{"id": j.id, "status": j.status}
		if j.model != "" {
			data["fine_tuned_model"] = j.model
		}
		if j.code != "" {
			data["error_code"] = j.code
		}
		raw, _ := json.Marshal(data)
		v, err := proto.Marshal(&eventsv1.Notification{Id: "evt_" + j.id + "_" + j.status, Type: "fine_tuning.job." + j.status, AccountId: j.account,
			CreatedAt: timestamppb.New(j.at), DataJson: string(raw)})
		if err != nil {
			return err
		}
		recs = append(recs, &kgo.Record{Topic: events.Notifications.Name, Key: []byte(j.account), Value: v})
	}
	if err := n.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return err
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.id
	}
	_, err = n.st.db.Exec(ctx, `UPDATE jobs SET notified = true WHERE id = ANY($1)`, ids)
	return err
}
