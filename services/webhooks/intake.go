package webhooks

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-mesh/bulkhead/services/events"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	eventsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/events/v1"
)

// startIntake consumes the notifications (group webhooks-intake): each
// becomes one delivery per subscribed endpoint, written before the
// offsets are committed; a notification seen again makes nothing new.
func startIntake(rt *platform.Runtime, st *store, wake func()) error {
	cl, err := rt.Kafka(
		kgo.ConsumerGroup(events.Notifications.Group("webhooks")),
		kgo.ConsumeTopics(events.Notifications.Name),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cl.AllowRebalance()
		for {
			fs := cl.PollRecords(ctx, 100)
			if ctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			fs.EachError(func(topic string, partition int32, err error) {
				rt.Log.Warn("notifications: fetch", "topic", topic, "partition", partition, "error", err)
			})
			recs := fs.Records()
			if len(recs) > 0 {
				if !intake(ctx, st, recs, rt.Log) {
					return
				}
				wake()
				if err := cl.CommitRecords(ctx, recs...); err != nil && ctx.Err() == nil {
					rt.Log.Warn("notifications: commit offsets (they will be seen again, and make nothing new)", "error", err)
				}
			}
			cl.AllowRebalance()
		}
	}()
	rt.OnStop(func() error { cancel(); <-done; return nil })
	return nil
}

// intake writes the deliveries of a batch, trying again until the
// database takes them or the consumer stops (false).
func intake(ctx context.Context, st *store, recs []*kgo.Record, log *slog.Logger) bool {
	for _, r := range recs {
		n := &eventsv1.Notification{}
		if err := proto.Unmarshal(r.Value, n); err != nil || n.GetId() == "" || n.GetAccountId() == "" || n.GetType() == "" {
			log.Error("notifications: malformed record, skipped", "partition", r.Partition, "offset", r.Offset, "error", err)
			continue
		}
		body := payload(n)
		backoff := 100 * time.Millisecond
		for {
			_, err := st.enqueue(ctx, n.GetId(), n.GetType(), n.GetAccountId(), func(string) string { return body })
			if err == nil {
				break
			}
			log.Warn("notifications: enqueue (trying again)", "event", n.GetId(), "error", err)
			select {
			case <-ctx.Done():
				return false
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
	return true
}

// payload is the body every endpoint receives, in the shape of OpenAI's
// webhook events.
func payload(n *eventsv1.Notification) string {
	data := json.RawMessage(n.GetDataJson())
	if !json.Valid(data) {
		data = json.RawMessage("{}")
	}
	b, _ := json.Marshal(struct {
		Object    string          `json:"object"`
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		CreatedAt int64           `json:"created_at"`
		Data      json.RawMessage `json:"data"`
	}{"event", n.GetId(), n.GetType(), n.GetCreatedAt().GetSeconds(), data})
	return string(b)
}
