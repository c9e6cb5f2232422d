// Package training is the training service (DESIGN.md §5): files of
// training conversations, and fine-tuning jobs in the shape of OpenAI's
// fine-tuning API. A job is queued on Kafka (services/events:
// FineTuningJobs); a worker (worker.go) trains the builtin engine's model
// on the conversations, epoch by epoch with a checkpoint at each epoch's
// end, charges the account per trained token, and registers the result in
// models as ft:BASE:SUFFIX:JOB for the job's account alone. Inference
// replicas load what a job learnt with GetAdapter.
package training

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"regexp"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	"github.com/bulkhead-mesh/bulkhead/services/events"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
	trainingv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/training/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
)

// Options are the training service's own settings.
type Options struct {
	// Worker runs a fine-tuning worker in the process (a member of the
	// workers' consumer group).
	Worker bool
	// MaxFileBytes bounds an uploaded file.
	MaxFileBytes int64
	// PriceMicrosPerMtok is what a trained token costs (per million, in
	// micro-units of the billing currency; 0: DefaultPriceMicrosPerMtok).
	PriceMicrosPerMtok int64
	// StepInterval is spent on each training step, like an accelerator's
	// step time, so that a job's progress can be watched (0: as fast as
	// the CPU goes).
	StepInterval time.Duration
	// Lease is how long a worker's claim on a job holds without renewal:
	// the longest a job waits after its worker died.
	Lease time.Duration
}

// Defaults.
const (
	DefaultMaxFileBytes       = 2 << 20
	DefaultPriceMicrosPerMtok = 3_000_000
	DefaultLease              = 15 * time.Second
)

// Flags registers the options.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.BoolVar(&o.Worker, "worker", true, "also run a fine-tuning worker in this process")
	fs.Int64Var(&o.MaxFileBytes, "max-file-bytes", DefaultMaxFileBytes, "largest training file accepted")
	fs.Int64Var(&o.PriceMicrosPerMtok, "price-micros-per-mtok", DefaultPriceMicrosPerMtok, "price of a million trained tokens, in micro-units of the billing currency (0: the default)")
	fs.DurationVar(&o.StepInterval, "step-interval", 0, "time spent on each training step, like an accelerator's (0: as fast as the CPU goes)")
	fs.DurationVar(&o.Lease, "lease", DefaultLease, "how long a worker's claim on a job holds without renewal")
}

type server struct {
	trainingv1.UnimplementedTrainingServiceServer
	o        Options
	store    *store
	models   modelsv1.ModelsServiceClient
	users    usersv1.UsersServiceClient
	producer *kgo.Client
	notify   *notifier
}

var _ trainingv1.TrainingServiceServer = (*server)(nil)

// Setup wires the service.
func Setup(opts *Options) platform.Setup {
	return func(ctx context.Context, rt *platform.Runtime) error {
		o := *opts
		if o.MaxFileBytes <= 0 {
			o.MaxFileBytes = DefaultMaxFileBytes
		}
		switch {
		case o.PriceMicrosPerMtok < 0:
			return platform.InvalidField("price-micros-per-mtok", "must not be negative")
		case o.PriceMicrosPerMtok == 0:
			o.PriceMicrosPerMtok = DefaultPriceMicrosPerMtok
		}
		if o.Lease <= 0 {
			o.Lease = DefaultLease
		}
		db, err := rt.Postgres(ctx, migrations)
		if err != nil {
			return err
		}
		ccs, err := rt.DialAll("models", "users")
		if err != nil {
			return err
		}
		// One producer for the process's topics: jobs (by default), and the
		// notifier's and the worker's records, which name theirs.
		producer, err := rt.KafkaProducer(events.FineTuningJobs.Name)
		if err != nil {
			return err
		}
		s := &server{o: o, store: &store{db: db}, models: modelsv1.NewModelsServiceClient(ccs[0]), users: usersv1.NewUsersServiceClient(ccs[1]), producer: producer}
		s.notify = startNotifier(rt, s.store, producer)
		if o.Worker {
			if err := startWorker(rt, s); err != nil {
				return err
			}
		}
		trainingv1.RegisterTrainingServiceServer(rt.GRPC, s)
		return nil
	}
}

const (
	filePrefix = "file-"
	jobPrefix  = "ftjob-"
)

func (s *server) CreateFile(ctx context.Context, req *trainingv1.CreateFileRequest) (*trainingv1.CreateFileResponse, error) {
	switch {
	case req.GetAccountId() == "":
		return nil, platform.InvalidField("account_id", "is required")
	case req.GetPurpose() != "fine-tune":
		return nil, platform.InvalidField("purpose", "%q is not a purpose this platform stores files for (fine-tune)", req.GetPurpose())
	case req.GetFilename() == "" || len(req.GetFilename()) > 256:
		return nil, platform.InvalidField("file", "the file needs a name of 1-256 characters")
	case len(req.GetContent()) == 0:
		return nil, platform.InvalidField("file", "is empty")
	case int64(len(req.GetContent())) > s.o.MaxFileBytes:
		return nil, platform.InvalidField("file", "is %d bytes, more than the %d a training file may have", len(req.GetContent()), s.o.MaxFileBytes)
	}
	examples, err := parseDataset(req.GetContent())
	if err != nil {
		return nil, platform.InvalidField("file", "%s is not a fine-tuning file in the chat format: %v", req.GetFilename(), err)
	}
	var tokens int64
	for _, e := range examples {
		tokens += e.tokens()
	}
	f := storedFile{File: &trainingv1.File{Id: platform.NewID(filePrefix), AccountId: req.GetAccountId(), Filename: req.GetFilename(), Purpose: req.GetPurpose(),
		Bytes: int64(len(req.GetContent())), CreatedAt: timestamppb.Now()}, content: req.GetContent(), examples: len(examples), tokens: tokens}
	if err := s.store.createFile(ctx, f); err != nil {
		return nil, status.Errorf(codes.Internal, "store the file: %v", err)
	}
	return &trainingv1.CreateFileResponse{File: f.File}, nil
}

func (s *server) GetFile(ctx context.Context, req *trainingv1.GetFileRequest) (*trainingv1.GetFileResponse, error) {
	f, err := s.store.file(ctx, req.GetAccountId(), req.GetFileId(), false)
	if errors.Is(err, errNotFound) {
		return nil, status.Errorf(codes.NotFound, "file %q does not exist", req.GetFileId())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "file: %v", err)
	}
	return &trainingv1.GetFileResponse{File: f.File}, nil
}

var suffixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,39}$`)

// Hyperparameters chosen when a job leaves them "auto".
const (
	autoEpochs   = 3
	autoLRM      = 1.0
	maxEpochs    = 50
	maxBatchSize = 256
)

func autoBatchSize(examples int) int32 { return int32(max(1, min(32, examples/8))) }

// validateJob checks what a request says before anything is looked up.
func validateJob(req *trainingv1.CreateJobRequest) error {
	h := req.GetHyperparameters()
	switch {
	case req.GetAccountId() == "":
		return platform.InvalidField("account_id", "is required")
	case req.GetModel() == "":
		return platform.InvalidField("model", "is required")
	case req.GetTrainingFile() == "":
		return platform.InvalidField("training_file", "is required")
	case req.GetSuffix() != "" && !suffixRE.MatchString(req.GetSuffix()):
		return platform.InvalidField("suffix", "%q must be 1-40 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit", req.GetSuffix())
	case h.NEpochs != nil && (h.GetNEpochs() < 1 || h.GetNEpochs() > maxEpochs):
		return platform.InvalidField("hyperparameters.n_epochs", "%d is not in 1..%d", h.GetNEpochs(), maxEpochs)
	case h.BatchSize != nil && (h.GetBatchSize() < 1 || h.GetBatchSize() > maxBatchSize):
		return platform.InvalidField("hyperparameters.batch_size", "%d is not in 1..%d", h.GetBatchSize(), maxBatchSize)
	case h.LearningRateMultiplier != nil && !(h.GetLearningRateMultiplier() > 0 && h.GetLearningRateMultiplier() <= 10):
		return platform.InvalidField("hyperparameters.learning_rate_multiplier", "%g is not in (0, 10]", h.GetLearningRateMultiplier())
	}
	return nil
}

func (s *server) CreateJob(ctx context.Context, req *trainingv1.CreateJobRequest) (*trainingv1.CreateJobResponse, error) {
	if err := validateJob(req); err != nil {
		return nil, err
	}
	account := req.GetAccountId()
	base, err := s.models.GetModel(ctx, &modelsv1.GetModelRequest{Name: req.GetModel(), AccountId: account})
	if status.Code(err) == codes.NotFound {
		return nil, platform.InvalidField("model", "model %q does not exist", req.GetModel())
	}
	if err != nil {
		return nil, err
	}
	m := base.GetModel()
	switch {
	case m.GetFineTuningJobId() != "":
		return nil, platform.InvalidField("model", "%q is a fine-tuned model; fine-tune its base, %q, instead", m.GetName(), m.GetBaseModel())
	case m.GetEngine() != "builtin":
		return nil, platform.InvalidField("model", "%q is served by engine %s, whose weights this platform does not hold; only builtin-engine models can be fine-tuned", m.GetName(), m.GetEngine())
	}
	train, err := s.fileFor(ctx, account, req.GetTrainingFile(), "training_file")
	if err != nil {
		return nil, err
	}
	if v := req.GetValidationFile(); v != "" {
		if _, err := s.fileFor(ctx, account, v, "validation_file"); err != nil {
			return nil, err
		}
	}
	h := &trainingv1.Hyperparameters{NEpochs: req.GetHyperparameters().NEpochs, BatchSize: req.GetHyperparameters().BatchSize,
		LearningRateMultiplier: req.GetHyperparameters().LearningRateMultiplier}
	if h.NEpochs == nil {
		h.NEpochs = ptr(int32(autoEpochs))
	}
	if h.BatchSize == nil {
		h.BatchSize = ptr(autoBatchSize(train.examples))
	}
	if h.LearningRateMultiplier == nil {
		h.LearningRateMultiplier = ptr(autoLRM)
	}
	// What the whole job would cost must be there now; each epoch reserves
	// its own part before it runs (worker.go).
	cost := costOf(train.tokens*int64(h.GetNEpochs()), s.o.PriceMicrosPerMtok)
	acct, err := s.users.GetAccount(ctx, &usersv1.GetAccountRequest{AccountId: account})
	if err != nil {
		return nil, err
	}
	if acct.GetAccount().GetBalanceMicros() < cost {
		return nil, platform.Reason(codes.FailedPrecondition, apierr.ReasonBudget, 0,
			fmt.Sprintf("Insufficient Balance: the job trains %d tokens (%d per epoch × %d epochs), which costs %d micro-units; the balance is %d",
				train.tokens*int64(h.GetNEpochs()), train.tokens, h.GetNEpochs(), cost, acct.GetAccount().GetBalanceMicros()))
	}
	seed := req.GetSeed()
	if req.Seed == nil {
		n, _ := rand.Int(rand.Reader, big.NewInt(1<<31))
		seed = n.Int64()
	}
	j := job{Job: &trainingv1.Job{Id: platform.NewID(jobPrefix), AccountId: account, Model: m.GetName(), TrainingFile: train.Id, ValidationFile: req.GetValidationFile(),
		Hyperparameters: h, Suffix: req.GetSuffix(), Seed: seed}, baseWeights: m.GetEngineModel(), price: s.o.PriceMicrosPerMtok}
	out, created, err := s.store.createJob(ctx, j, req.GetRequestId())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "store the job: %v", err)
	}
	if !created {
		return &trainingv1.CreateJobResponse{Job: out.Job}, nil
	}
	info := trainingv1.EventLevel_EVENT_LEVEL_INFO
	for _, msg := range []string{
		"Created fine-tuning job: " + out.Id,
		fmt.Sprintf("Validated training file %s: %d examples, %d tokens per epoch", train.Id, train.examples, train.tokens),
		"Files validated, moving job to queued state",
	} {
		if err := s.store.event(ctx, out.Id, info, msg, nil); err != nil {
			return nil, status.Errorf(codes.Internal, "job event: %v", err)
		}
	}
	// Queued on Kafka for a worker; a job that cannot be queued is not
	// kept, so that the client's retry (same request id) makes it again.
	rec := &kgo.Record{Key: []byte(out.Id), Value: []byte(out.Id)}
	if err := s.producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
		if derr := s.store.deleteJob(context.WithoutCancel(ctx), out.Id); derr != nil {
			return nil, status.Errorf(codes.Internal, "queue the job: %v; and remove it: %v", err, derr)
		}
		return nil, status.Errorf(codes.Unavailable, "the job queue (Kafka) is unavailable: %v", err)
	}
	return &trainingv1.CreateJobResponse{Job: out.Job}, nil
}

func ptr[T any](v T) *T { return &v }

// costOf prices tokens at micros per million, rounding up.
func costOf(tokens, microsPerMtok int64) int64 {
	return (tokens*microsPerMtok + 999_999) / 1_000_000
}

// fileFor is an account's file a job names in field.
func (s *server) fileFor(ctx context.Context, account, id, field string) (storedFile, error) {
	f, err := s.store.file(ctx, account, id, false)
	if errors.Is(err, errNotFound) {
		return f, platform.InvalidField(field, "file %q does not exist", id)
	}
	if err != nil {
		return f, status.Errorf(codes.Internal, "file: %v", err)
	}
	if f.Purpose != "fine-tune" {
		return f, platform.InvalidField(field, "file %q has purpose %q, not fine-tune", id, f.Purpose)
	}
	return f, nil
}

func (s *server) jobOf(ctx context.Context, account, id string) (job, error) {
	if account == "" {
		return job{}, platform.InvalidField("account_id", "is required")
	}
	j, err := s.store.job(ctx, account, id)
	if errors.Is(err, errNotFound) {
		return j, status.Errorf(codes.NotFound, "fine-tuning job %q does not exist", id)
	}
	if err != nil {
		return j, status.Errorf(codes.Internal, "job: %v", err)
	}
	return j, nil
}

func (s *server) GetJob(ctx context.Context, req *trainingv1.GetJobRequest) (*trainingv1.GetJobResponse, error) {
	j, err := s.jobOf(ctx, req.GetAccountId(), req.GetJobId())
	if err != nil {
		return nil, err
	}
	return &trainingv1.GetJobResponse{Job: j.Job}, nil
}

func (s *server) ListJobs(ctx context.Context, req *trainingv1.ListJobsRequest) (*trainingv1.ListJobsResponse, error) {
	if req.GetAccountId() == "" {
		return nil, platform.InvalidField("account_id", "is required")
	}
	limit, err := platform.PageLimit(req.GetLimit())
	if err != nil {
		return nil, err
	}
	jobs, more, err := s.store.listJobs(ctx, req.GetAccountId(), req.GetAfter(), limit)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "jobs: %v", err)
	}
	out := &trainingv1.ListJobsResponse{HasMore: more}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, j.Job)
	}
	return out, nil
}

func (s *server) CancelJob(ctx context.Context, req *trainingv1.CancelJobRequest) (*trainingv1.CancelJobResponse, error) {
	if req.GetAccountId() == "" {
		return nil, platform.InvalidField("account_id", "is required")
	}
	before, err := s.store.cancel(ctx, req.GetAccountId(), req.GetJobId())
	if errors.Is(err, errNotFound) {
		return nil, status.Errorf(codes.NotFound, "fine-tuning job %q does not exist", req.GetJobId())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "cancel: %v", err)
	}
	if terminal(before) {
		return nil, status.Errorf(codes.FailedPrecondition, "fine-tuning job %s has already %s; only a job that has not finished can be cancelled", req.GetJobId(), before)
	}
	// The worker sees it at its next step and stops there.
	s.notify.ended()
	if err := s.store.event(ctx, req.GetJobId(), trainingv1.EventLevel_EVENT_LEVEL_INFO, "The job was cancelled", nil); err != nil {
		return nil, status.Errorf(codes.Internal, "job event: %v", err)
	}
	j, err := s.jobOf(ctx, req.GetAccountId(), req.GetJobId())
	if err != nil {
		return nil, err
	}
	return &trainingv1.CancelJobResponse{Job: j.Job}, nil
}

func (s *server) ListJobEvents(ctx context.Context, req *trainingv1.ListJobEventsRequest) (*trainingv1.ListJobEventsResponse, error) {
	limit, err := platform.PageLimit(req.GetLimit())
	if err != nil {
		return nil, err
	}
	if _, err := s.jobOf(ctx, req.GetAccountId(), req.GetJobId()); err != nil {
		return nil, err
	}
	evs, more, err := s.store.events(ctx, req.GetJobId(), req.GetAfter(), limit)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "job events: %v", err)
	}
	return &trainingv1.ListJobEventsResponse{Events: evs, HasMore: more}, nil
}

func (s *server) ListCheckpoints(ctx context.Context, req *trainingv1.ListCheckpointsRequest) (*trainingv1.ListCheckpointsResponse, error) {
	limit, err := platform.PageLimit(req.GetLimit())
	if err != nil {
		return nil, err
	}
	j, err := s.jobOf(ctx, req.GetAccountId(), req.GetJobId())
	if err != nil {
		return nil, err
	}
	cps, more, err := s.store.checkpoints(ctx, j, req.GetAfter(), limit)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "checkpoints: %v", err)
	}
	return &trainingv1.ListCheckpointsResponse{Checkpoints: cps, HasMore: more}, nil
}

func (s *server) GetAdapter(ctx context.Context, req *trainingv1.GetAdapterRequest) (*trainingv1.GetAdapterResponse, error) {
	base, adapter, err := s.store.adapter(ctx, req.GetJobId())
	if errors.Is(err, errNotFound) {
		return nil, status.Errorf(codes.NotFound, "no fine-tuning job %q has succeeded", req.GetJobId())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "adapter: %v", err)
	}
	return &trainingv1.GetAdapterResponse{Base: base, Adapter: adapter}, nil
}

// modelName is what a job's model is called: ft:BASE:SUFFIX:JOB.
func modelName(j job) string {
	return "ft:" + j.Model + ":" + j.Suffix + ":" + j.Id
}

// checkpointModelName names a checkpoint as OpenAI does: the model's name
// and the step.
func checkpointModelName(j job, step int32) string {
	return fmt.Sprintf("%s:ckpt-step-%d", modelName(j), step)
}
