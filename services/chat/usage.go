package chat

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bulkhead-mesh/bulkhead/services/events"
	"github.com/bulkhead-mesh/bulkhead/services/outbox"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	eventsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/events/v1"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
)

// openUsageOutbox opens the outbox of the usage events and its producer
// (idempotent, acknowledged by every in-sync replica), and closes both at
// stop, the outbox first: it delivers what waits, within the drain time,
// and leaves the rest on disk for the next start.
func openUsageOutbox(rt *platform.Runtime, o *Options) (*outbox.Outbox, error) {
	dir := o.OutboxDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "bulkhead", "outbox", rt.Config.Instance)
	}
	cl, err := rt.KafkaProducer(events.Usage.Name,
		// A produce that cannot be delivered fails after this and is tried
		// again by the outbox, rather than hold the client's buffer.
		kgo.RecordDeliveryTimeout(10*time.Second),
	)
	if err != nil {
		return nil, err
	}
	b, err := outbox.Open(outbox.Options{Dir: dir, Topic: events.Usage.Name, MaxBytes: o.OutboxMaxBytes, Log: rt.Log, Meter: rt.Telemetry.Meter}, cl)
	if err != nil {
		return nil, err
	}
	rt.OnStop(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), rt.Config.DrainTimeout)
		defer cancel()
		return b.Close(ctx)
	})
	return b, nil
}

// record queues the usage event of the request (keyed by account: an
// account's events keep their order).
func (t *completion) record(u *usage, reason inferencev1.FinishReason, outcome string) error {
	ev := &eventsv1.UsageEvent{
		RequestId: t.requestID, AccountId: t.id.GetAccountId(), KeyId: t.id.GetKeyId(),
		Model: t.model.GetName(), ModelVersion: t.model.GetVersion(), AskedModel: t.asked.GetName(),
		PromptTokens: u.hit + u.miss, PromptCacheHitTokens: u.hit, PromptCacheMissTokens: u.miss,
		CompletionTokens: u.completion, ReasoningTokens: u.reasoning, CostMicros: t.cost(u),
		Outcome: outcome, CacheHit: t.started.GetCache() == "hit",
		StartedAt: timestamppb.New(t.startedAt), FinishedAt: timestamppb.Now(), Producer: t.s.instance,
	}
	if reason != inferencev1.FinishReason_FINISH_REASON_UNSPECIFIED {
		ev.FinishReason = reason.String()
	}
	return t.s.usage.AppendNumbered([]byte(ev.AccountId), func(seq uint64) ([]byte, error) {
		ev.Sequence = seq
		return proto.Marshal(ev)
	})
}
