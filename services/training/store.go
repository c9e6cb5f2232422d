package training

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	trainingv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/training/v1"
)

//go:embed migrations/*.sql
var migrations embed.FS

type store struct{ db *pgxpool.Pool }

var errNotFound = errors.New("not found")

var statuses = map[string]trainingv1.JobStatus{
	"validating_files": trainingv1.JobStatus_JOB_STATUS_VALIDATING_FILES,
	"queued":           trainingv1.JobStatus_JOB_STATUS_QUEUED,
	"running":          trainingv1.JobStatus_JOB_STATUS_RUNNING,
	"succeeded":        trainingv1.JobStatus_JOB_STATUS_SUCCEEDED,
	"failed":           trainingv1.JobStatus_JOB_STATUS_FAILED,
	"cancelled":        trainingv1.JobStatus_JOB_STATUS_CANCELLED,
}

// StatusName is the API's name of a status ("queued", ...).
func StatusName(s trainingv1.JobStatus) string {
	for k, v := range statuses {
		if v == s {
			return k
		}
	}
	return ""
}

func terminal(status string) bool {
	return status == "succeeded" || status == "failed" || status == "cancelled"
}

// storedFile is a file and what validation found in it.
type storedFile struct {
	*trainingv1.File
	content  []byte
	examples int
	tokens   int64
}

func (s *store) createFile(ctx context.Context, f storedFile) error {
	_, err := s.db.Exec(ctx, `INSERT INTO files (id, account_id, filename, purpose, bytes, content, examples, tokens, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		f.Id, f.AccountId, f.Filename, f.Purpose, f.Bytes, f.content, f.examples, f.tokens, f.CreatedAt.AsTime())
	return err
}

// file is an account's file (errNotFound for another account's).
func (s *store) file(ctx context.Context, account, id string, withContent bool) (storedFile, error) {
	f := storedFile{File: &trainingv1.File{}}
	var created time.Time
	q := `SELECT id, account_id, filename, purpose, bytes, examples, tokens, created_at, ` +
		map[bool]string{true: "content", false: "''::bytea"}[withContent] + ` FROM files WHERE id = $1 AND account_id = $2`
	err := s.db.QueryRow(ctx, q, id, account).Scan(&f.Id, &f.AccountId, &f.Filename, &f.Purpose, &f.Bytes, &f.examples, &f.tokens, &created, &f.content)
	if errors.Is(err, pgx.ErrNoRows) {
		return f, errNotFound
	}
	f.CreatedAt = timestamppb.New(created)
	return f, err
}

// job is a job as the worker needs it: the API's view and its own terms.
type job struct {
	*trainingv1.Job
	baseWeights string
	price       int64
	worker      string
}

const jobColumns = `id, account_id, model, base_weights, fine_tuned_model, status, training_file, coalesce(validation_file, ''),
	n_epochs, batch_size, lr_multiplier, suffix, seed, price_micros_per_mtok, trained_tokens,
	error_code, error_message, error_param, worker, created_at, finished_at`

func scanJob(row pgx.Row) (job, error) {
	j := job{Job: &trainingv1.Job{Hyperparameters: &trainingv1.Hyperparameters{}}}
	var status, code, msg, param string
	var epochs, batch int32
	var lr float64
	var created time.Time
	var finished *time.Time
	err := row.Scan(&j.Id, &j.AccountId, &j.Model, &j.baseWeights, &j.FineTunedModel, &status, &j.TrainingFile, &j.ValidationFile,
		&epochs, &batch, &lr, &j.Suffix, &j.Seed, &j.price, &j.TrainedTokens, &code, &msg, &param, &j.worker, &created, &finished)
	if err != nil {
		return j, err
	}
	j.Status = statuses[status]
	j.Hyperparameters.NEpochs, j.Hyperparameters.BatchSize, j.Hyperparameters.LearningRateMultiplier = &epochs, &batch, &lr
	if code != "" {
		j.Error = &trainingv1.JobError{Code: code, Message: msg, Param: param}
	}
	j.CreatedAt = timestamppb.New(created)
	if finished != nil {
		j.FinishedAt = timestamppb.New(*finished)
	}
	return j, nil
}

// createJob inserts a queued job; a request id the account used before
// returns that job instead (created false).
func (s *store) createJob(ctx context.Context, j job, requestID string) (job, bool, error) {
	var reqID *string
	if requestID != "" {
		reqID = &requestID
	}
	h := j.GetHyperparameters()
	var validation *string
	if j.ValidationFile != "" {
		validation = &j.ValidationFile
	}
	tag, err := s.db.Exec(ctx, `INSERT INTO jobs (id, account_id, request_id, model, base_weights, status, training_file, validation_file,
		n_epochs, batch_size, lr_multiplier, suffix, seed, price_micros_per_mtok)
		VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (account_id, request_id) DO NOTHING`,
		j.Id, j.AccountId, reqID, j.Model, j.baseWeights, j.TrainingFile, validation,
		h.GetNEpochs(), h.GetBatchSize(), h.GetLearningRateMultiplier(), j.Suffix, j.Seed, j.price)
	if err != nil {
		return job{}, false, err
	}
	if tag.RowsAffected() == 0 {
		out, err := scanJob(s.db.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE account_id = $1 AND request_id = $2`, j.AccountId, requestID))
		return out, false, err
	}
	out, err := s.jobByID(ctx, j.Id)
	return out, true, err
}

// deleteJob removes a job that could not be queued (nothing refers to it yet).
func (s *store) deleteJob(ctx context.Context, id string) error {
	_, err := s.db.Exec(ctx, `DELETE FROM job_events WHERE job_id = $1`, id)
	if err == nil {
		_, err = s.db.Exec(ctx, `DELETE FROM jobs WHERE id = $1`, id)
	}
	return err
}

func (s *store) jobByID(ctx context.Context, id string) (job, error) {
	j, err := scanJob(s.db.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return j, errNotFound
	}
	return j, err
}

// job is an account's job (errNotFound for another account's).
func (s *store) job(ctx context.Context, account, id string) (job, error) {
	j, err := s.jobByID(ctx, id)
	if err == nil && j.AccountId != account {
		return job{}, errNotFound
	}
	return j, err
}

// page reads up to limit+1 rows newest first, after the row whose id is
// after (a cursor of the same listing), and reports whether there are more.
func page[T any](ctx context.Context, s *store, query string, limit int32, scan func(pgx.Row) (T, error), args ...any) ([]T, bool, error) {
	rows, err := s.db.Query(ctx, query+` LIMIT `+strconv.Itoa(int(limit)+1), args...)
	if err != nil {
		return nil, false, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, false, err
	}
	more := len(out) > int(limit)
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

func (s *store) listJobs(ctx context.Context, account, after string, limit int32) ([]job, bool, error) {
	return page(ctx, s, `SELECT `+jobColumns+` FROM jobs WHERE account_id = $1
		AND ($2 = '' OR seq < (SELECT seq FROM jobs WHERE id = $2 AND account_id = $1)) ORDER BY seq DESC`, limit, scanJob, account, after)
}

// cancel moves a job that has not finished to cancelled; it returns the
// job's status before.
func (s *store) cancel(ctx context.Context, account, id string) (string, error) {
	var before string
	err := s.db.QueryRow(ctx, `WITH old AS (SELECT status FROM jobs WHERE id = $1 AND account_id = $2 FOR UPDATE)
		UPDATE jobs SET status = CASE WHEN old.status IN ('succeeded', 'failed', 'cancelled') THEN old.status ELSE 'cancelled' END,
			finished_at = CASE WHEN old.status IN ('succeeded', 'failed', 'cancelled') THEN finished_at ELSE now() END
		FROM old WHERE id = $1 RETURNING old.status`, id, account).Scan(&before)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errNotFound
	}
	return before, err
}

func levelName(l trainingv1.EventLevel) string {
	switch l {
	case trainingv1.EventLevel_EVENT_LEVEL_WARN:
		return "warn"
	case trainingv1.EventLevel_EVENT_LEVEL_ERROR:
		return "error"
	}
	return "info"
}

var levels = map[string]trainingv1.EventLevel{"info": trainingv1.EventLevel_EVENT_LEVEL_INFO, "warn": trainingv1.EventLevel_EVENT_LEVEL_WARN, "error": trainingv1.EventLevel_EVENT_LEVEL_ERROR}

// event records a job's event; metrics make it a "metrics" event.
func (s *store) event(ctx context.Context, jobID string, level trainingv1.EventLevel, msg string, metrics map[string]float64) error {
	typ := "message"
	if metrics != nil {
		typ = "metrics"
	} else {
		metrics = map[string]float64{}
	}
	raw, _ := json.Marshal(metrics)
	_, err := s.db.Exec(ctx, `INSERT INTO job_events (job_id, level, message, type, metrics) VALUES ($1, $2, $3, $4, $5)`,
		jobID, levelName(level), msg, typ, raw)
	return err
}

func eventID(seq int64) string { return "ftevent-" + strconv.FormatInt(seq, 10) }

func parseSeq(cursor, prefix string) int64 {
	if len(cursor) <= len(prefix) || cursor[:len(prefix)] != prefix {
		return 0
	}
	n, _ := strconv.ParseInt(cursor[len(prefix):], 10, 64)
	return n
}

func (s *store) events(ctx context.Context, jobID, after string, limit int32) ([]*trainingv1.JobEvent, bool, error) {
	return page(ctx, s, `SELECT seq, level, message, type, metrics, created_at FROM job_events
		WHERE job_id = $1 AND ($2 = 0 OR seq < $2) ORDER BY seq DESC`, limit, func(r pgx.Row) (*trainingv1.JobEvent, error) {
		var seq int64
		var level string
		var created time.Time
		e := &trainingv1.JobEvent{}
		var metrics map[string]float64
		if err := r.Scan(&seq, &level, &e.Message, &e.Type, &metrics, &created); err != nil {
			return nil, err
		}
		e.Id, e.Level, e.CreatedAt = eventID(seq), levels[level], timestamppb.New(created)
		if len(metrics) > 0 {
			e.Metrics = metrics
		}
		return e, nil
	}, jobID, parseSeq(after, "ftevent-"))
}

func checkpointID(jobID string, epoch int32) string {
	return "ftckpt-" + jobID[len(jobPrefix):] + "-" + strconv.Itoa(int(epoch))
}

func (s *store) checkpoints(ctx context.Context, j job, after string, limit int32) ([]*trainingv1.Checkpoint, bool, error) {
	afterEpoch := int64(0)
	if i := len(after) - 1; after != "" {
		for i >= 0 && after[i] != '-' {
			i--
		}
		afterEpoch, _ = strconv.ParseInt(after[i+1:], 10, 32)
	}
	return page(ctx, s, `SELECT epoch, step, metrics, completed_at FROM checkpoints
		WHERE job_id = $1 AND adapter IS NOT NULL AND ($2 = 0 OR epoch < $2) ORDER BY epoch DESC`, limit, func(r pgx.Row) (*trainingv1.Checkpoint, error) {
		var epoch, step int32
		var metrics map[string]float64
		var completed time.Time
		if err := r.Scan(&epoch, &step, &metrics, &completed); err != nil {
			return nil, err
		}
		return &trainingv1.Checkpoint{Id: checkpointID(j.Id, epoch), JobId: j.Id, StepNumber: step, Metrics: metrics,
			FineTunedModelCheckpoint: checkpointModelName(j, step), CreatedAt: timestamppb.New(completed)}, nil
	}, j.Id, afterEpoch)
}

// claim makes worker the job's runner until the lease ends, if no other
// worker holds it; it returns the job's status (ok false: another holds it).
func (s *store) claim(ctx context.Context, id, worker string, lease time.Duration) (status string, ok bool, err error) {
	err = s.db.QueryRow(ctx, `UPDATE jobs SET worker = $2, lease_until = now() + $3 * interval '1 millisecond'
		WHERE id = $1 AND (worker = '' OR worker = $2 OR lease_until IS NULL OR lease_until < now()) RETURNING status`,
		id, worker, lease.Milliseconds()).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		err = s.db.QueryRow(ctx, `SELECT status FROM jobs WHERE id = $1`, id).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", false, errNotFound
		}
		return status, false, err
	}
	return status, true, err
}

// release gives the claim up (a worker stopping, or done).
func (s *store) release(ctx context.Context, id, worker string) error {
	_, err := s.db.Exec(ctx, `UPDATE jobs SET worker = '', lease_until = NULL WHERE id = $1 AND worker = $2`, id, worker)
	return err
}

// setRunning moves a queued job to running.
func (s *store) setRunning(ctx context.Context, id string) error {
	_, err := s.db.Exec(ctx, `UPDATE jobs SET status = 'running' WHERE id = $1 AND status = 'queued'`, id)
	return err
}

// epochRow is an epoch's checkpoint row.
type epochRow struct {
	epoch         int32
	reservationID string
	cost, tokens  int64
	step          int32
	adapter       []byte
	charged       bool
}

// epochs are the job's epoch rows, in order.
func (s *store) epochs(ctx context.Context, id string) ([]epochRow, error) {
	rows, err := s.db.Query(ctx, `SELECT epoch, reservation_id, cost_micros, tokens, step, adapter, charged FROM checkpoints WHERE job_id = $1 ORDER BY epoch`, id)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (epochRow, error) {
		var e epochRow
		err := r.Scan(&e.epoch, &e.reservationID, &e.cost, &e.tokens, &e.step, &e.adapter, &e.charged)
		return e, err
	})
}

// startEpoch records the reservation that pays for an epoch.
func (s *store) startEpoch(ctx context.Context, id string, e epochRow) error {
	_, err := s.db.Exec(ctx, `INSERT INTO checkpoints (job_id, epoch, reservation_id, cost_micros, tokens) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (job_id, epoch) DO UPDATE SET reservation_id = $3, cost_micros = $4, tokens = $5`, id, e.epoch, e.reservationID, e.cost, e.tokens)
	return err
}

// completeEpoch saves the checkpoint at the end of an epoch, and the
// tokens trained so far, at once.
func (s *store) completeEpoch(ctx context.Context, id string, epoch, step int32, adapter []byte, metrics map[string]float64, trained int64) error {
	raw, _ := json.Marshal(metrics)
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE checkpoints SET step = $3, adapter = $4, metrics = $5, completed_at = now() WHERE job_id = $1 AND epoch = $2`,
			id, epoch, step, adapter, raw); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE jobs SET trained_tokens = $2 WHERE id = $1`, id, trained)
		return err
	})
}

func (s *store) markCharged(ctx context.Context, id string, epoch int32) error {
	_, err := s.db.Exec(ctx, `UPDATE checkpoints SET charged = true WHERE job_id = $1 AND epoch = $2`, id, epoch)
	return err
}

// finish ends a running (or queued) job; it reports false when the job
// had ended before (cancelled meanwhile).
func (s *store) finish(ctx context.Context, id, status, model string, jerr *trainingv1.JobError) (bool, error) {
	tag, err := s.db.Exec(ctx, `UPDATE jobs SET status = $2, fine_tuned_model = $3, error_code = $4, error_message = $5, error_param = $6,
		finished_at = now(), worker = '', lease_until = NULL WHERE id = $1 AND status IN ('queued', 'running')`,
		id, status, model, jerr.GetCode(), jerr.GetMessage(), jerr.GetParam())
	return tag.RowsAffected() == 1, err
}

// setModelName names the model a job is about to register.
func (s *store) setModelName(ctx context.Context, id, name string) error {
	_, err := s.db.Exec(ctx, `UPDATE jobs SET fine_tuned_model = $2 WHERE id = $1`, id, name)
	return err
}

// adapter is the last checkpoint of a job that succeeded (or is about
// to: its model is registered just before its status says so).
func (s *store) adapter(ctx context.Context, id string) (base string, adapter []byte, err error) {
	err = s.db.QueryRow(ctx, `SELECT j.base_weights, c.adapter FROM jobs j JOIN checkpoints c ON c.job_id = j.id
		WHERE j.id = $1 AND j.status IN ('running', 'succeeded') AND j.fine_tuned_model <> '' AND c.adapter IS NOT NULL ORDER BY c.epoch DESC LIMIT 1`, id).Scan(&base, &adapter)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, errNotFound
	}
	return base, adapter, err
}
