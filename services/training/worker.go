package training

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bulkhead-mesh/bulkhead/services/events"
	"github.com/bulkhead-mesh/bulkhead/services/inference/ngram"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	eventsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/events/v1"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
	trainingv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/training/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
)

// BaseWeights is the one set of weights the builtin engine has: its model
// trained on the embedded corpus (the registry's engine_model).
const BaseWeights = "opticks-3gram"

// Weight is how many times a conversation counts, per epoch, at learning
// rate multiplier 1: enough for what the dataset says to outweigh the
// corpus where they meet.
const Weight = 16

// worker runs fine-tuning jobs: a member of the workers' consumer group,
// one job at a time. A job's offset is committed once the job has ended;
// a job interrupted (the worker stops, or its partition moves to another
// worker) is delivered again and resumes after its last checkpoint.
type worker struct {
	s   *server
	id  string
	cl  *kgo.Client
	log *slog.Logger

	base     func() *ngram.Model
	mu       sync.Mutex
	current  int32 // partition of the job running (-1: none)
	cancel   context.CancelFunc
	finished chan struct{}
	done     chan struct{}
}

func startWorker(rt *platform.Runtime, s *server) error {
	w := &worker{s: s, id: rt.Config.Instance, log: rt.Log, current: -1, done: make(chan struct{}),
		base: sync.OnceValue(func() *ngram.Model { return ngram.Train(ngram.Corpus()) })}
	cl, err := rt.Kafka(
		kgo.ConsumerGroup(events.FineTuningJobs.Group("training")),
		kgo.ConsumeTopics(events.FineTuningJobs.Name),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsRevoked(w.revoked),
		kgo.OnPartitionsLost(w.revoked),
	)
	if err != nil {
		return err
	}
	w.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	go w.run(ctx)
	// Registered after the clients, so it runs before they close.
	rt.OnStop(func() error { cancel(); <-w.done; return nil })
	return nil
}

// revoked stops the job of a partition taken away, and waits until it
// has (the partition's next owner resumes it).
func (w *worker) revoked(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	w.mu.Lock()
	cancel, finished, p := w.cancel, w.finished, w.current
	w.mu.Unlock()
	if cancel == nil {
		return
	}
	for _, q := range lost[events.FineTuningJobs.Name] {
		if q == p {
			cancel()
			<-finished
			return
		}
	}
}

func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	for {
		fs := w.cl.PollRecords(ctx, 1)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(topic string, partition int32, err error) {
			w.log.Warn("fine-tuning jobs: fetch", "topic", topic, "partition", partition, "error", err)
		})
		for _, rec := range fs.Records() {
			jctx, cancel := context.WithCancel(ctx)
			finished := make(chan struct{})
			w.mu.Lock()
			w.current, w.cancel, w.finished = rec.Partition, cancel, finished
			w.mu.Unlock()
			ended := w.runJob(jctx, string(rec.Value))
			w.mu.Lock()
			w.current, w.cancel = -1, nil
			w.mu.Unlock()
			cancel()
			close(finished)
			if ended {
				if err := w.cl.CommitRecords(ctx, rec); err != nil && ctx.Err() == nil {
					w.log.Warn("fine-tuning jobs: commit offset (the job will be delivered again, and found ended)", "job", string(rec.Value), "error", err)
				}
			}
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// failure ends a job as failed, with an error the account can act on.
type failure struct{ code, msg, param string }

func (f *failure) Error() string { return f.code + ": " + f.msg }

// errLeaseLost: another worker holds the job now.
var errLeaseLost = errors.New("another worker holds the job")

// runJob runs a job until it has ended (true), trying again after
// transient errors, or until ctx ends (false: it will be resumed).
func (w *worker) runJob(ctx context.Context, id string) bool {
	backoff := time.Second
	for {
		err := w.execute(ctx, id)
		var f *failure
		switch {
		case err == nil:
			return true
		case ctx.Err() != nil || errors.Is(err, errLeaseLost):
			w.s.store.release(context.WithoutCancel(ctx), id, w.id)
			return false
		case errors.Is(err, errNotFound):
			// Not kept: it could not be queued, and its client was told so.
			return true
		case errors.As(err, &f):
			w.fail(context.WithoutCancel(ctx), id, f)
			return true
		}
		w.log.Warn("fine-tuning job: trying again", "job", id, "error", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			w.s.store.release(context.WithoutCancel(ctx), id, w.id)
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (w *worker) fail(ctx context.Context, id string, f *failure) {
	if ok, err := w.s.store.finish(ctx, id, "failed", "", &trainingv1.JobError{Code: f.code, Message: f.msg, Param: f.param}); err != nil || !ok {
		w.log.Warn("fine-tuning job: could not record its failure", "job", id, "failure", f.Error(), "error", err)
		return
	}
	w.s.notify.ended()
	w.event(ctx, id, trainingv1.EventLevel_EVENT_LEVEL_ERROR, "The job failed: "+f.msg, nil)
}

func (w *worker) event(ctx context.Context, id string, level trainingv1.EventLevel, msg string, metrics map[string]float64) {
	if err := w.s.store.event(ctx, id, level, msg, metrics); err != nil {
		w.log.Warn("fine-tuning job: event", "job", id, "error", err)
	}
}

// claim takes the job, waiting while another worker's lease holds it (a
// worker that died holds it until its lease ends). It returns the job's
// status.
func (w *worker) claim(ctx context.Context, id string) (string, error) {
	for {
		st, ok, err := w.s.store.claim(ctx, id, w.id, w.s.o.Lease)
		if err != nil || ok || terminal(st) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(w.s.o.Lease / 5):
		}
	}
}

// plan is a job's training data and schedule.
type plan struct {
	train, valid []example
	texts        [][]string // per training example
	tokens       int64      // per epoch
	batches      int
	weight       uint32
}

func (w *worker) plan(ctx context.Context, j job) (*plan, error) {
	load := func(id, field string) ([]example, error) {
		f, err := w.s.store.file(ctx, j.AccountId, id, true)
		if errors.Is(err, errNotFound) {
			return nil, &failure{code: "invalid_file", param: field, msg: "file " + id + " no longer exists"}
		}
		if err != nil {
			return nil, err
		}
		exs, err := parseDataset(f.content)
		if err != nil {
			return nil, &failure{code: "invalid_file", param: field, msg: "file " + id + ": " + err.Error()}
		}
		return exs, nil
	}
	p := &plan{}
	var err error
	if p.train, err = load(j.TrainingFile, "training_file"); err != nil {
		return nil, err
	}
	if j.ValidationFile != "" {
		if p.valid, err = load(j.ValidationFile, "validation_file"); err != nil {
			return nil, err
		}
	}
	for _, e := range p.train {
		p.texts = append(p.texts, e.text())
		p.tokens += e.tokens()
	}
	b := int(j.GetHyperparameters().GetBatchSize())
	p.batches = (len(p.train) + b - 1) / b
	p.weight = uint32(max(1, math.Round(Weight*j.GetHyperparameters().GetLearningRateMultiplier())))
	return p, nil
}

// execute runs the job from where it is.
func (w *worker) execute(ctx context.Context, id string) error {
	st, err := w.claim(ctx, id)
	if err != nil {
		return err
	}
	j, err := w.s.store.jobByID(ctx, id)
	if err != nil {
		return err
	}
	switch st {
	case "succeeded":
		// Ended, but perhaps before its offset was committed: make sure of
		// the model, once.
		return w.register(ctx, j)
	case "failed", "cancelled":
		return nil
	}
	if j.baseWeights != BaseWeights {
		return &failure{code: "invalid_model", param: "model", msg: fmt.Sprintf("the base model's weights %q are not the builtin engine's (%s)", j.baseWeights, BaseWeights)}
	}
	info := trainingv1.EventLevel_EVENT_LEVEL_INFO
	if st == "queued" {
		if err := w.s.store.setRunning(ctx, id); err != nil {
			return err
		}
		w.event(ctx, id, info, "Fine-tuning job started on "+w.id, nil)
	} else {
		w.event(ctx, id, trainingv1.EventLevel_EVENT_LEVEL_WARN, "Fine-tuning job resumed on "+w.id+" after an interruption", nil)
	}
	p, err := w.plan(ctx, j)
	if err != nil {
		return err
	}
	rows, err := w.s.store.epochs(ctx, id)
	if err != nil {
		return err
	}
	adapter := ngram.NewCounts()
	cur := w.base()
	done := int32(0)
	inProgress := map[int32]epochRow{}
	for _, r := range rows {
		if r.adapter == nil {
			inProgress[r.epoch] = r
			continue
		}
		if !r.charged {
			if err := w.charge(ctx, j, r); err != nil {
				return err
			}
		}
		if r.epoch > done {
			done = r.epoch
			if adapter, err = ngram.DecodeCounts(r.adapter); err != nil {
				return fmt.Errorf("checkpoint of epoch %d: %w", r.epoch, err)
			}
		}
	}
	if done > 0 {
		cur = ngram.TrainWith(ngram.Corpus(), adapter)
		w.event(ctx, id, info, fmt.Sprintf("Resuming from the checkpoint of epoch %d", done), nil)
	}
	epochs := j.GetHyperparameters().GetNEpochs()
	total := int(epochs) * p.batches
	for e := done + 1; e <= epochs; e++ {
		row, ok := inProgress[e]
		if !ok || row.reservationID == "" {
			if row, err = w.reserve(ctx, j, e, p.tokens); err != nil {
				return err
			}
		}
		order := rand.New(rand.NewPCG(uint64(j.Seed), uint64(e))).Perm(len(p.train))
		step := int(e-1) * p.batches
		for b := 0; b < p.batches; b++ {
			step++
			st, ok, err := w.s.store.claim(ctx, id, w.id, w.s.o.Lease)
			switch {
			case err != nil:
				return err
			case st == "cancelled":
				w.refund(ctx, row)
				w.event(ctx, id, info, fmt.Sprintf("Stopped at step %d/%d: the job was cancelled", step, total), nil)
				return nil
			case !ok:
				return errLeaseLost
			}
			size := int(j.GetHyperparameters().GetBatchSize())
			var loss float64
			var n int
			for _, i := range order[b*size : min((b+1)*size, len(order))] {
				for k, pair := range p.train[i].learnt() {
					l, t := cur.Loss(pair[0], pair[1])
					loss, n = loss+l, n+t
					adapter.Learn(p.texts[i][k], p.weight)
				}
			}
			if d := w.s.o.StepInterval; d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
			w.event(ctx, id, info, fmt.Sprintf("Step %d/%d: training loss=%.3f", step, total, loss/float64(max(n, 1))),
				map[string]float64{"step": float64(step), "train_loss": loss / float64(max(n, 1))})
		}
		cur = ngram.TrainWith(ngram.Corpus(), adapter)
		metrics := map[string]float64{"step": float64(step)}
		metrics["train_loss"], metrics["train_perplexity"] = meanLoss(cur, p.train)
		if len(p.valid) > 0 {
			metrics["valid_loss"], metrics["valid_perplexity"] = meanLoss(cur, p.valid)
			_, metrics["base_valid_perplexity"] = meanLoss(w.base(), p.valid)
		}
		enc, err := adapter.MarshalBinary()
		if err != nil {
			return err
		}
		if err := w.s.store.completeEpoch(ctx, id, e, int32(step), enc, metrics, int64(e)*p.tokens); err != nil {
			return err
		}
		msg := fmt.Sprintf("Checkpoint created at step %d (epoch %d/%d): training loss=%.3f", step, e, epochs, metrics["train_loss"])
		if len(p.valid) > 0 {
			msg += fmt.Sprintf(", validation perplexity=%.1f (base model %.1f)", metrics["valid_perplexity"], metrics["base_valid_perplexity"])
		}
		w.event(ctx, id, info, msg, metrics)
		row.step = int32(step)
		if err := w.charge(ctx, j, row); err != nil {
			return err
		}
	}
	j.FineTunedModel = modelName(j)
	if err := w.s.store.setModelName(ctx, id, j.FineTunedModel); err != nil {
		return err
	}
	if err := w.register(ctx, j); err != nil {
		return err
	}
	ended, err := w.s.store.finish(ctx, id, "succeeded", j.FineTunedModel, nil)
	if err != nil {
		return err
	}
	if !ended {
		// Cancelled between the last step and now: its model goes too.
		_, err := w.s.models.SetModelState(ctx, &modelsv1.SetModelStateRequest{Name: j.FineTunedModel, State: modelsv1.ModelState_MODEL_STATE_DISABLED,
			Reason: "its fine-tuning job " + id + " was cancelled"})
		return err
	}
	w.s.notify.ended()
	w.event(ctx, id, info, "New fine-tuned model created: "+j.FineTunedModel, nil)
	w.event(ctx, id, info, "The job has successfully completed", nil)
	return nil
}

// meanLoss is the loss per token of a model on examples' replies, and its
// perplexity.
func meanLoss(m *ngram.Model, exs []example) (float64, float64) {
	var loss float64
	var n int
	for _, e := range exs {
		for _, pair := range e.learnt() {
			l, t := m.Loss(pair[0], pair[1])
			loss, n = loss+l, n+t
		}
	}
	mean := loss / float64(max(n, 1))
	return mean, math.Exp(mean)
}

func epochRequestID(job string, epoch int32) string {
	return job + "/epoch-" + strconv.Itoa(int(epoch))
}

// reserve holds what an epoch costs against the account's balance before
// it runs: an account that cannot pay fails the job there.
func (w *worker) reserve(ctx context.Context, j job, epoch int32, tokens int64) (epochRow, error) {
	row := epochRow{epoch: epoch, tokens: tokens, cost: costOf(tokens, j.price)}
	// Training is bounded by its budget, not by the account's per-minute
	// request and token limits (one token is what the reservation counts).
	r, err := w.s.users.Reserve(ctx, &usersv1.ReserveRequest{AccountId: j.AccountId, RequestId: epochRequestID(j.Id, epoch), Model: j.Model,
		MaxTokens: 1, HoldMicros: row.cost})
	switch status.Code(err) {
	case codes.OK:
	case codes.FailedPrecondition, codes.NotFound, codes.PermissionDenied:
		return row, &failure{code: "insufficient_balance", msg: fmt.Sprintf("epoch %d costs %d micro-units (%d tokens): %s", epoch, row.cost, tokens, status.Convert(err).Message())}
	default:
		return row, err
	}
	row.reservationID = r.GetReservationId()
	return row, w.s.store.startEpoch(ctx, j.Id, row)
}

func (w *worker) refund(ctx context.Context, row epochRow) {
	if _, err := w.s.users.Refund(context.WithoutCancel(ctx), &usersv1.RefundRequest{ReservationId: row.reservationID}); err != nil {
		w.log.Warn("fine-tuning job: refund (the hold ends with the reservation)", "reservation", row.reservationID, "error", err)
	}
}

// charge settles an epoch's reservation and records its usage in the
// ledger (a usage event, whose request id makes it count once however
// often it is sent).
func (w *worker) charge(ctx context.Context, j job, row epochRow) error {
	reqID := epochRequestID(j.Id, row.epoch)
	usage := &usersv1.Usage{PromptTokens: row.tokens, PromptCacheMissTokens: row.tokens, TotalTokens: row.tokens, CostMicros: row.cost, Requests: 1}
	if _, err := w.s.users.Commit(ctx, &usersv1.CommitRequest{ReservationId: row.reservationID, RequestId: reqID, Model: j.Model, Usage: usage}); err != nil {
		return err
	}
	now := timestamppb.Now()
	ev := &eventsv1.UsageEvent{RequestId: reqID, AccountId: j.AccountId, Model: j.Model, AskedModel: j.Model,
		PromptTokens: row.tokens, PromptCacheMissTokens: row.tokens, CostMicros: row.cost, Outcome: "fine_tuning",
		StartedAt: now, FinishedAt: now, Producer: "training/" + j.Id, Sequence: uint64(row.epoch)}
	b, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	if err := w.s.producer.ProduceSync(ctx, &kgo.Record{Topic: events.Usage.Name, Key: []byte(j.AccountId), Value: b}).FirstErr(); err != nil {
		return fmt.Errorf("usage event: %w", err)
	}
	return w.s.store.markCharged(ctx, j.Id, row.epoch)
}

// register puts the job's model in the registry, for its account alone,
// unless it is there already (a job resumed after it registered).
func (w *worker) register(ctx context.Context, j job) error {
	name := j.FineTunedModel
	if name == "" {
		return nil
	}
	got, err := w.s.models.GetModel(ctx, &modelsv1.GetModelRequest{Name: name, AccountId: j.AccountId})
	if err == nil && got.GetModel().GetFineTuningJobId() == j.Id {
		return nil
	}
	if err != nil && status.Code(err) != codes.NotFound {
		return err
	}
	base, err := w.s.models.GetModel(ctx, &modelsv1.GetModelRequest{Name: j.Model, AccountId: j.AccountId})
	if err != nil {
		return err
	}
	b := base.GetModel()
	m := &modelsv1.Model{Name: name, Engine: "builtin", EngineModel: j.Id, ContextLength: b.GetContextLength(),
		MaxOutputTokens: b.GetMaxOutputTokens(), DefaultMaxTokens: b.GetDefaultMaxTokens(), OwnedBy: j.AccountId,
		BaseModel: b.GetName(), FineTuningJobId: j.Id, AccountId: j.AccountId, Thinking: b.GetThinking(),
		PromptPriceMicrosPerMtok: b.GetPromptPriceMicrosPerMtok(), CacheHitPriceMicrosPerMtok: b.GetCacheHitPriceMicrosPerMtok(),
		CompletionPriceMicrosPerMtok: b.GetCompletionPriceMicrosPerMtok()}
	_, err = w.s.models.RegisterModel(ctx, &modelsv1.RegisterModelRequest{Model: m})
	return err
}
