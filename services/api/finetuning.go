package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	trainingv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/training/v1"
)

// Files and fine-tuning jobs, in the shape of OpenAI's API: the caller's
// own account's, always.

type wireFile struct {
	ID        string `json:"id"`
	Object    string `json:"object"`
	Bytes     int64  `json:"bytes"`
	CreatedAt int64  `json:"created_at"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status"`
}

func toWireFile(f *trainingv1.File) wireFile {
	return wireFile{ID: f.GetId(), Object: "file", Bytes: f.GetBytes(), CreatedAt: f.GetCreatedAt().GetSeconds(), Filename: f.GetFilename(),
		Purpose: f.GetPurpose(), Status: "processed"}
}

// createFile takes a multipart upload (file, purpose), as the SDKs send it.
func (s *server) createFile(w http.ResponseWriter, r *http.Request, c caller) {
	r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes)
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			(&apierr.Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large",
				Message: fmt.Sprintf("Request body larger than %d bytes", s.o.MaxBodyBytes)}).Write(w)
			return
		}
		apierr.Malformed("The body must be multipart/form-data with the fields file and purpose: " + err.Error()).Write(w)
		return
	}
	defer r.MultipartForm.RemoveAll()
	purpose := r.FormValue("purpose")
	if purpose == "" {
		apierr.InvalidParam("purpose", "purpose: is required (fine-tune)").Write(w)
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		apierr.InvalidParam("file", "file: is required (the training data, JSONL)").Write(w)
		return
	}
	defer f.Close()
	content, err := io.ReadAll(f)
	if err != nil {
		apierr.Malformed("Could not read the file").Write(w)
		return
	}
	resp, err := s.training.CreateFile(r.Context(), &trainingv1.CreateFileRequest{AccountId: c.id.AccountId, Filename: hdr.Filename, Purpose: purpose, Content: content})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	writeJSON(w, http.StatusOK, toWireFile(resp.GetFile()))
}

func (s *server) getFile(w http.ResponseWriter, r *http.Request, c caller) {
	resp, err := s.training.GetFile(r.Context(), &trainingv1.GetFileRequest{AccountId: c.id.AccountId, FileId: r.PathValue("id")})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	writeJSON(w, http.StatusOK, toWireFile(resp.GetFile()))
}

type wireJobError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
}

type wireHyperparameters struct {
	NEpochs                int32   `json:"n_epochs"`
	BatchSize              int32   `json:"batch_size"`
	LearningRateMultiplier float64 `json:"learning_rate_multiplier"`
}

type wireJob struct {
	ID              string              `json:"id"`
	Object          string              `json:"object"`
	CreatedAt       int64               `json:"created_at"`
	Error           *wireJobError       `json:"error"`
	FineTunedModel  *string             `json:"fine_tuned_model"`
	FinishedAt      *int64              `json:"finished_at"`
	Hyperparameters wireHyperparameters `json:"hyperparameters"`
	Model           string              `json:"model"`
	OrganizationID  string              `json:"organization_id"`
	ResultFiles     []string            `json:"result_files"`
	Seed            int64               `json:"seed"`
	Status          string              `json:"status"`
	TrainedTokens   *int64              `json:"trained_tokens"`
	TrainingFile    string              `json:"training_file"`
	ValidationFile  *string             `json:"validation_file"`
	Suffix          *string             `json:"user_provided_suffix"`
	Method          wireMethod          `json:"method"`
}

type wireMethod struct {
	Type       string `json:"type"`
	Supervised struct {
		Hyperparameters wireHyperparameters `json:"hyperparameters"`
	} `json:"supervised"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toWireJob(j *trainingv1.Job) wireJob {
	h := j.GetHyperparameters()
	out := wireJob{ID: j.GetId(), Object: "fine_tuning.job", CreatedAt: j.GetCreatedAt().GetSeconds(), FineTunedModel: optional(j.GetFineTunedModel()),
		FinishedAt: unix(j.GetFinishedAt()), Model: j.GetModel(), OrganizationID: j.GetAccountId(), ResultFiles: []string{}, Seed: j.GetSeed(),
		Status: strings.ToLower(strings.TrimPrefix(j.GetStatus().String(), "JOB_STATUS_")), TrainingFile: j.GetTrainingFile(), ValidationFile: optional(j.GetValidationFile()),
		Suffix:          optional(j.GetSuffix()),
		Hyperparameters: wireHyperparameters{NEpochs: h.GetNEpochs(), BatchSize: h.GetBatchSize(), LearningRateMultiplier: h.GetLearningRateMultiplier()}}
	out.Method.Type, out.Method.Supervised.Hyperparameters = "supervised", out.Hyperparameters
	if e := j.GetError(); e != nil {
		out.Error = &wireJobError{Code: e.GetCode(), Message: e.GetMessage(), Param: optional(e.GetParam())}
	}
	if j.GetTrainedTokens() > 0 || out.Status == "succeeded" {
		n := j.GetTrainedTokens()
		out.TrainedTokens = &n
	}
	return out
}

// hyperparameter reads a number or "auto" (nil).
func hyperparameter[T int32 | float64](raw json.RawMessage, prefix, name string) (*T, *apierr.Error) {
	if len(raw) == 0 || string(raw) == "null" || string(raw) == `"auto"` {
		return nil, nil
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		field := prefix + "." + name
		return nil, apierr.InvalidParam(field, fmt.Sprintf("%s: must be a number or \"auto\", got %s", field, raw))
	}
	return &v, nil
}

// wireHyperparametersIn are hyperparameters as a request gives them:
// numbers or "auto".
type wireHyperparametersIn struct {
	NEpochs                json.RawMessage `json:"n_epochs"`
	BatchSize              json.RawMessage `json:"batch_size"`
	LearningRateMultiplier json.RawMessage `json:"learning_rate_multiplier"`
}

// toHyperparameters reads them; prefix is where they were in the body.
func toHyperparameters(h *wireHyperparametersIn, prefix string) (*trainingv1.Hyperparameters, *apierr.Error) {
	out := &trainingv1.Hyperparameters{}
	if h == nil {
		return out, nil
	}
	var aerr *apierr.Error
	if out.NEpochs, aerr = hyperparameter[int32](h.NEpochs, prefix, "n_epochs"); aerr != nil {
		return nil, aerr
	}
	if out.BatchSize, aerr = hyperparameter[int32](h.BatchSize, prefix, "batch_size"); aerr != nil {
		return nil, aerr
	}
	if out.LearningRateMultiplier, aerr = hyperparameter[float64](h.LearningRateMultiplier, prefix, "learning_rate_multiplier"); aerr != nil {
		return nil, aerr
	}
	return out, nil
}

func (s *server) createJob(w http.ResponseWriter, r *http.Request, c caller) {
	var body struct {
		Model           string                 `json:"model"`
		TrainingFile    string                 `json:"training_file"`
		ValidationFile  *string                `json:"validation_file"`
		Suffix          *string                `json:"suffix"`
		Seed            *int64                 `json:"seed"`
		Hyperparameters *wireHyperparametersIn `json:"hyperparameters"`
		// OpenAI's current form: the method and its hyperparameters.
		Method *struct {
			Type       string `json:"type"`
			Supervised *struct {
				Hyperparameters *wireHyperparametersIn `json:"hyperparameters"`
			} `json:"supervised"`
		} `json:"method"`
	}
	if aerr := decode(w, r, s.o.MaxBodyBytes, &body); aerr != nil {
		aerr.Write(w)
		return
	}
	hp, prefix := body.Hyperparameters, "hyperparameters"
	if m := body.Method; m != nil {
		switch {
		case m.Type != "supervised":
			apierr.InvalidParam("method.type", fmt.Sprintf("method.type: %q is not available: the builtin engine learns from conversations (supervised), not from preferences or graders", m.Type)).Write(w)
			return
		case hp != nil && m.Supervised != nil && m.Supervised.Hyperparameters != nil:
			apierr.InvalidParam("hyperparameters", "hyperparameters: give them in method.supervised.hyperparameters or at the top level (deprecated), not both").Write(w)
			return
		case m.Supervised != nil && m.Supervised.Hyperparameters != nil:
			hp, prefix = m.Supervised.Hyperparameters, "method.supervised.hyperparameters"
		}
	}
	h, aerr := toHyperparameters(hp, prefix)
	if aerr != nil {
		aerr.Write(w)
		return
	}
	req := &trainingv1.CreateJobRequest{AccountId: c.id.AccountId, Model: body.Model, TrainingFile: body.TrainingFile, Seed: body.Seed, Hyperparameters: h}
	if body.ValidationFile != nil {
		req.ValidationFile = *body.ValidationFile
	}
	if body.Suffix != nil {
		req.Suffix = *body.Suffix
	}
	// The same Idempotency-Key makes the same job; without one, the
	// request's id does (a retry of this call over the mesh).
	req.RequestId = r.Header.Get("Idempotency-Key")
	if req.RequestId == "" {
		req.RequestId = platform.RequestID(r.Context())
	}
	resp, err := s.training.CreateJob(r.Context(), req)
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	writeJSON(w, http.StatusOK, toWireJob(resp.GetJob()))
}

// pageOf reads after and limit.
func pageOf(r *http.Request) (string, int32, *apierr.Error) {
	q := r.URL.Query()
	limit := int64(0)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return "", 0, apierr.InvalidParam("limit", "limit: must be an integer")
		}
		limit = n
	}
	return q.Get("after"), int32(limit), nil
}

func (s *server) listJobs(w http.ResponseWriter, r *http.Request, c caller) {
	after, limit, aerr := pageOf(r)
	if aerr != nil {
		aerr.Write(w)
		return
	}
	resp, err := s.training.ListJobs(r.Context(), &trainingv1.ListJobsRequest{AccountId: c.id.AccountId, After: after, Limit: limit})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	data := make([]wireJob, 0, len(resp.GetJobs()))
	for _, j := range resp.GetJobs() {
		data = append(data, toWireJob(j))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": resp.GetHasMore()})
}

func (s *server) getJob(w http.ResponseWriter, r *http.Request, c caller) {
	resp, err := s.training.GetJob(r.Context(), &trainingv1.GetJobRequest{AccountId: c.id.AccountId, JobId: r.PathValue("id")})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	writeJSON(w, http.StatusOK, toWireJob(resp.GetJob()))
}

func (s *server) cancelJob(w http.ResponseWriter, r *http.Request, c caller) {
	resp, err := s.training.CancelJob(r.Context(), &trainingv1.CancelJobRequest{AccountId: c.id.AccountId, JobId: r.PathValue("id")})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	writeJSON(w, http.StatusOK, toWireJob(resp.GetJob()))
}

func (s *server) listJobEvents(w http.ResponseWriter, r *http.Request, c caller) {
	after, limit, aerr := pageOf(r)
	if aerr != nil {
		aerr.Write(w)
		return
	}
	resp, err := s.training.ListJobEvents(r.Context(), &trainingv1.ListJobEventsRequest{AccountId: c.id.AccountId, JobId: r.PathValue("id"), After: after, Limit: limit})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	type wireEvent struct {
		ID        string             `json:"id"`
		Object    string             `json:"object"`
		CreatedAt int64              `json:"created_at"`
		Level     string             `json:"level"`
		Message   string             `json:"message"`
		Type      string             `json:"type"`
		Data      map[string]float64 `json:"data"`
	}
	data := make([]wireEvent, 0, len(resp.GetEvents()))
	for _, e := range resp.GetEvents() {
		level := strings.ToLower(strings.TrimPrefix(e.GetLevel().String(), "EVENT_LEVEL_"))
		data = append(data, wireEvent{ID: e.GetId(), Object: "fine_tuning.job.event", CreatedAt: e.GetCreatedAt().GetSeconds(), Level: level,
			Message: e.GetMessage(), Type: e.GetType(), Data: e.GetMetrics()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": resp.GetHasMore()})
}

func (s *server) listCheckpoints(w http.ResponseWriter, r *http.Request, c caller) {
	after, limit, aerr := pageOf(r)
	if aerr != nil {
		aerr.Write(w)
		return
	}
	resp, err := s.training.ListCheckpoints(r.Context(), &trainingv1.ListCheckpointsRequest{AccountId: c.id.AccountId, JobId: r.PathValue("id"), After: after, Limit: limit})
	if err != nil {
		apierr.FromGRPC(err).Write(w)
		return
	}
	type wireCheckpoint struct {
		ID                       string             `json:"id"`
		Object                   string             `json:"object"`
		CreatedAt                int64              `json:"created_at"`
		FineTunedModelCheckpoint string             `json:"fine_tuned_model_checkpoint"`
		FineTuningJobID          string             `json:"fine_tuning_job_id"`
		StepNumber               int32              `json:"step_number"`
		Metrics                  map[string]float64 `json:"metrics"`
	}
	data := make([]wireCheckpoint, 0, len(resp.GetCheckpoints()))
	for _, cp := range resp.GetCheckpoints() {
		data = append(data, wireCheckpoint{ID: cp.GetId(), Object: "fine_tuning.job.checkpoint", CreatedAt: cp.GetCreatedAt().GetSeconds(),
			FineTunedModelCheckpoint: cp.GetFineTunedModelCheckpoint(), FineTuningJobID: cp.GetJobId(), StepNumber: cp.GetStepNumber(), Metrics: cp.GetMetrics()})
	}
	out := map[string]any{"object": "list", "data": data, "has_more": resp.GetHasMore()}
	if len(data) > 0 {
		out["first_id"], out["last_id"] = data[0].ID, data[len(data)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}
