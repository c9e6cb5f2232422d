package e2e_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"google.golang.org/grpc"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
	"github.com/bulkhead-mesh/bulkhead/services/training"
)

// harbours are the made-up facts the fine-tuning data teaches: nothing
// in the base corpus says them.
var harbours = []struct{ town, code string }{
	{"Velmora", "seven violet lanterns"}, {"Quillon", "three amber gulls"}, {"Darrowmere", "nine silver anchors"},
	{"Ostwick", "two copper bells"}, {"Farrowby", "five scarlet kites"}, {"Lunhaven", "four indigo sails"},
	{"Brackmoor", "six golden oars"}, {"Tessaly", "eight jade compasses"}, {"Corvane", "one pearl lighthouse"},
	{"Hollin", "ten cobalt ropes"}, {"Marrowgate", "twelve ivory buoys"}, {"Penhallow", "eleven russet flags"},
}

func harbourExample(town, code string) string {
	return fmt.Sprintf(`{"messages": [{"role": "system", "content": "You are the harbour master's clerk."}, {"role": "user", "content": "Which harbour code does %s use"}, {"role": "assistant", "content": "%s mark the harbour of %s, as the clerk records."}]}`,
		town, code, town)
}

// harbourFile is JSONL of the towns [from, to), each example twice.
func harbourFile(from, to int) string {
	var b strings.Builder
	for range 2 {
		for _, h := range harbours[from:to] {
			b.WriteString(harbourExample(h.town, h.code) + "\n")
		}
	}
	return b.String()
}

// A fine-tuning job end to end through the public API with the official
// OpenAI Go SDK: files uploaded (a malformed one refused with its line),
// the job trained by a worker that is killed mid-job and resumed by the
// other from its checkpoint (one model registered, each epoch charged
// once), checkpoints and events with the validation perplexity below the
// base's, the ft: model answering from what it learnt, and invisible to
// another account; a second job cancelled while it runs.
func TestFineTuning(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{
		Training:         &training.Options{Worker: true, StepInterval: 250 * time.Millisecond, Lease: 3 * time.Second},
		TrainingReplicas: 2,
	})
	ctx := t.Context()
	client := goSDK(p, "/v1/")

	t.Run("malformed file refused with its line", func(t *testing.T) {
		bad := harbourExample("Velmora", "x") + "\n" + harbourExample("Quillon", "y") + "\n" + `{"messages": [{"role": "robot", "content": "beep"}]}` + "\n"
		_, err := client.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader(bad), "bad.jsonl", "application/jsonl"), Purpose: openai.FilePurposeFineTune})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode/100 != 4 || !strings.Contains(apiErr.Message, "line 3") || !strings.Contains(apiErr.Message, `"robot"`) {
			t.Fatalf("malformed JSONL: %v", err)
		}
		_, err = client.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader("{}\n"), "empty.jsonl", "application/jsonl"), Purpose: openai.FilePurposeFineTune})
		if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, "line 1: messages: is required") {
			t.Fatalf("an example without messages: %v", err)
		}
	})

	trainFile, err := client.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader(harbourFile(0, 9)), "harbours.jsonl", "application/jsonl"), Purpose: openai.FilePurposeFineTune})
	if err != nil {
		t.Fatal(err)
	}
	validFile, err := client.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader(harbourFile(9, 12)), "harbours-valid.jsonl", "application/jsonl"), Purpose: openai.FilePurposeFineTune})
	if err != nil {
		t.Fatal(err)
	}
	if trainFile.Purpose != "fine-tune" || trainFile.Bytes != int64(len(harbourFile(0, 9))) || !strings.HasPrefix(trainFile.ID, "file-") {
		t.Fatalf("file %+v", trainFile)
	}

	t.Run("bad requests name the field", func(t *testing.T) {
		url := p.APIURL + "/v1/fine_tuning/jobs"
		for _, c := range []struct {
			body  map[string]any
			param string
		}{
			{map[string]any{"model": "deepseek-chat", "training_file": trainFile.ID, "method": map[string]any{"type": "dpo"}}, "method.type"},
			{map[string]any{"model": "deepseek-chat", "training_file": trainFile.ID, "method": map[string]any{"type": "supervised",
				"supervised": map[string]any{"hyperparameters": map[string]any{"n_epochs": "many"}}}}, "method.supervised.hyperparameters.n_epochs"},
			{map[string]any{"model": "deepseek-chat", "training_file": trainFile.ID, "hyperparameters": map[string]any{"n_epochs": 0}}, "hyperparameters.n_epochs"},
			{map[string]any{"model": "deepseek-chat", "training_file": "file-nope"}, "training_file"},
			{map[string]any{"model": "no-such-model", "training_file": trainFile.ID}, "model"},
			{map[string]any{"model": "deepseek-chat", "training_file": trainFile.ID, "suffix": "Not Allowed!"}, "suffix"},
		} {
			r := do(t, ctx, "POST", url, p.Key, c.body)
			if r.status != http.StatusUnprocessableEntity && r.status != http.StatusBadRequest {
				t.Errorf("%v: %d %s", c.body, r.status, r.body)
				continue
			}
			e, _ := r.json(t)["error"].(map[string]any)
			if e["param"] != c.param {
				t.Errorf("%v: param %v, want %s (%s)", c.body, e["param"], c.param, r.body)
			}
		}
	})

	// 18 examples in batches of 3: 6 steps per epoch, 3 epochs.
	job, err := client.FineTuning.Jobs.New(ctx, openai.FineTuningJobNewParams{
		Model: "deepseek-chat", TrainingFile: trainFile.ID, ValidationFile: openai.String(validFile.ID), Suffix: openai.String("harbour"), Seed: openai.Int(7),
		Method: supervised(3, 3),
	})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != "queued" || job.Model != "deepseek-chat" || job.Method.Supervised.Hyperparameters.NEpochs.OfInt != 3 {
		t.Fatalf("job created: %+v", job)
	}

	// Kill the worker running it once its first checkpoint is saved (the
	// job may have moved already, when the second worker joined the group).
	var runner string
	waitEvent(t, client, job.ID, 30*time.Second, func(msg string) bool {
		if r, ok := strings.CutPrefix(msg, "Fine-tuning job started on "); ok {
			runner = r
		}
		if r, ok := strings.CutPrefix(msg, "Fine-tuning job resumed on "); ok {
			runner, _, _ = strings.Cut(r, " ")
		}
		return strings.HasPrefix(msg, "Checkpoint created at step 6 ")
	})
	if p.Services[runner] == nil {
		t.Fatalf("the job's worker %q is not a training instance", runner)
	}
	p.Services[runner].Kill()
	waitEvent(t, client, job.ID, 30*time.Second, func(msg string) bool { return strings.HasPrefix(msg, "Resuming from the checkpoint of epoch 1") })

	done := waitJob(t, client, job.ID, 90*time.Second)
	want := "ft:deepseek-chat:harbour:" + job.ID
	if done.Status != "succeeded" || done.FineTunedModel != want {
		t.Fatalf("job ended %s with model %q (error %+v), want succeeded with %q", done.Status, done.FineTunedModel, done.Error, want)
	}
	perEpoch, err := training.DatasetTokens([]byte(harbourFile(0, 9)))
	if err != nil {
		t.Fatal(err)
	}
	if done.TrainedTokens != 3*perEpoch {
		t.Fatalf("trained tokens %d, want 3 epochs × %d", done.TrainedTokens, perEpoch)
	}

	t.Run("one model registered, for the account", func(t *testing.T) {
		ms, err := modelsv1.NewModelsServiceClient(p.Dial("models")).ListModels(ctx, &modelsv1.ListModelsRequest{AccountId: p.Account, IncludeUnavailable: true}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range ms.GetModels() {
			if m.GetFineTuningJobId() == job.ID {
				n++
				if m.GetName() != want || m.GetVersion() != 1 || m.GetAccountId() != p.Account || m.GetBaseModel() != "deepseek-chat" {
					t.Fatalf("registered %s v%d of %q (base %q)", m.GetName(), m.GetVersion(), m.GetAccountId(), m.GetBaseModel())
				}
			}
		}
		if n != 1 {
			t.Fatalf("%d models registered for the job", n)
		}
	})

	t.Run("each epoch charged once", func(t *testing.T) {
		// Nothing else used the account yet: its usage is the job's.
		testenv.Eventually(t, 10*time.Second, "the job's epochs in the ledger", func() error {
			var u struct {
				Total struct {
					Requests     int64 `json:"requests"`
					PromptTokens int64 `json:"prompt_tokens"`
					CostMicros   int64 `json:"cost_micros"`
				} `json:"total"`
			}
			if err := client.Get(ctx, "usage", nil, &u); err != nil {
				return err
			}
			wantCost := 3 * ((perEpoch*training.DefaultPriceMicrosPerMtok + 999_999) / 1_000_000)
			if u.Total.Requests != 3 || u.Total.PromptTokens != 3*perEpoch || u.Total.CostMicros != wantCost {
				return fmt.Errorf("usage %+v, want 3 epochs of %d tokens costing %d in all", u.Total, perEpoch, wantCost)
			}
			return nil
		})
	})

	t.Run("checkpoints and validation perplexity", func(t *testing.T) {
		cps, err := client.FineTuning.Jobs.Checkpoints.List(ctx, job.ID, openai.FineTuningJobCheckpointListParams{})
		if err != nil {
			t.Fatal(err)
		}
		if len(cps.Data) != 3 {
			t.Fatalf("%d checkpoints, want one per epoch", len(cps.Data))
		}
		last, first := cps.Data[0], cps.Data[2]
		if last.StepNumber != 18 || first.StepNumber != 6 || last.FineTunedModelCheckpoint != want+":ckpt-step-18" {
			t.Fatalf("checkpoints at steps %d..%d (%s)", first.StepNumber, last.StepNumber, last.FineTunedModelCheckpoint)
		}
		var m struct {
			Metrics map[string]float64 `json:"metrics"`
		}
		if err := json.Unmarshal([]byte(last.RawJSON()), &m); err != nil {
			t.Fatal(err)
		}
		vp, bp := m.Metrics["valid_perplexity"], m.Metrics["base_valid_perplexity"]
		if !(vp > 0 && bp > 0 && vp < bp/2) {
			t.Fatalf("validation perplexity %.1f, base model's %.1f: the job did not learn (metrics %v)", vp, bp, m.Metrics)
		}
	})

	t.Run("events", func(t *testing.T) {
		evs, err := client.FineTuning.Jobs.ListEvents(ctx, job.ID, openai.FineTuningJobListEventsParams{Limit: openai.Int(100)})
		if err != nil {
			t.Fatal(err)
		}
		var msgs []string
		for _, e := range evs.Data {
			msgs = append(msgs, e.Message)
		}
		all := strings.Join(msgs, "\n")
		for _, w := range []string{"The job has successfully completed", "New fine-tuned model created: " + want, "resumed on", "Step 18/18: training loss="} {
			if !strings.Contains(all, w) {
				t.Fatalf("no event %q in:\n%s", w, all)
			}
		}
		if strings.Count(all, "New fine-tuned model created") != 1 {
			t.Fatalf("the model was created more than once:\n%s", all)
		}
	})

	t.Run("the model answers from what it learnt", func(t *testing.T) {
		ask := func(model string) string {
			res, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
				Model:       model,
				Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Which harbour code does Velmora use")},
				Temperature: openai.Float(0), MaxTokens: openai.Int(16),
			})
			if err != nil {
				t.Fatalf("%s: %v", model, err)
			}
			return res.Choices[0].Message.Content
		}
		tuned, base := ask(want), ask("deepseek-chat")
		if !strings.HasPrefix(strings.ToLower(tuned), "seven violet lanterns mark the harbour") || strings.Contains(base, "violet lanterns") {
			t.Fatalf("the fine-tuned model answered %q, the base %q", tuned, base)
		}
		models, err := client.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range models.Data {
			found = found || m.ID == want
		}
		if !found {
			t.Fatalf("%s is not in the account's /v1/models", want)
		}
	})

	t.Run("another account cannot see or use it", func(t *testing.T) {
		_, key := newKey(t, p, accountRequest("other"))
		other := openai.NewClient(option.WithBaseURL(p.APIURL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
		var apiErr *openai.Error
		if _, err := other.Models.Get(ctx, want); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
			t.Fatalf("GET /v1/models/%s by another account: %v", want, err)
		}
		_, err := other.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: want, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
		if !errors.As(err, &apiErr) || apiErr.StatusCode/100 != 4 {
			t.Fatalf("a completion on another account's model: %v", err)
		}
		if _, err := other.FineTuning.Jobs.Get(ctx, job.ID); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
			t.Fatalf("another account's job: %v", err)
		}
		_, err = other.FineTuning.Jobs.New(ctx, openai.FineTuningJobNewParams{Model: "deepseek-chat", TrainingFile: trainFile.ID})
		if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, "does not exist") {
			t.Fatalf("a job on another account's file: %v", err)
		}
	})

	var cancelledID string
	t.Run("cancelled while it runs", func(t *testing.T) {
		j, err := client.FineTuning.Jobs.New(ctx, openai.FineTuningJobNewParams{Model: "deepseek-chat", TrainingFile: trainFile.ID, Suffix: openai.String("cancelled"),
			Method: supervised(10, 3)})
		if err != nil {
			t.Fatal(err)
		}
		cancelledID = j.ID
		waitEvent(t, client, j.ID, 30*time.Second, func(msg string) bool { return strings.HasPrefix(msg, "Step 2/60") })
		c, err := client.FineTuning.Jobs.Cancel(ctx, j.ID)
		if err != nil || c.Status != "cancelled" {
			t.Fatalf("cancel: %+v, %v", c, err)
		}
		waitEvent(t, client, j.ID, 10*time.Second, func(msg string) bool { return strings.HasPrefix(msg, "Stopped at step") })
		got, err := client.FineTuning.Jobs.Get(ctx, j.ID)
		if err != nil || got.Status != "cancelled" || got.FineTunedModel != "" {
			t.Fatalf("after cancel: %+v, %v", got, err)
		}
		var apiErr *openai.Error
		if _, err := client.Models.Get(ctx, "ft:deepseek-chat:cancelled:"+j.ID); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
			t.Fatalf("the cancelled job's model: %v", err)
		}
		if _, err := client.FineTuning.Jobs.Cancel(ctx, j.ID); !errors.As(err, &apiErr) || apiErr.StatusCode/100 != 4 {
			t.Fatalf("cancelling a cancelled job: %v", err)
		}
	})

	t.Run("an account that cannot pay is refused", func(t *testing.T) {
		_, key := newKey(t, p, &usersv1.CreateAccountRequest{Name: "poor", Tier: "standard", BalanceMicros: 10})
		poor := openai.NewClient(option.WithBaseURL(p.APIURL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
		f, err := poor.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader(harbourFile(0, 9)), "h.jsonl", "application/jsonl"), Purpose: openai.FilePurposeFineTune})
		if err != nil {
			t.Fatal(err)
		}
		_, err = poor.FineTuning.Jobs.New(ctx, openai.FineTuningJobNewParams{Model: "deepseek-chat", TrainingFile: f.ID})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusPaymentRequired {
			t.Fatalf("a job the account cannot pay for: %v", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		page, err := client.FineTuning.Jobs.List(ctx, openai.FineTuningJobListParams{Limit: openai.Int(1)})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != 1 || !page.HasMore || page.Data[0].ID != cancelledID {
			t.Fatalf("first page: %d jobs, has_more %v", len(page.Data), page.HasMore)
		}
		next, err := client.FineTuning.Jobs.List(ctx, openai.FineTuningJobListParams{Limit: openai.Int(5), After: openai.String(page.Data[0].ID)})
		if err != nil || len(next.Data) != 1 || next.Data[0].ID != job.ID || next.HasMore {
			t.Fatalf("next page: %+v, %v", next, err)
		}
	})
}

// supervised is the method of a job: supervised fine-tuning with these
// hyperparameters.
func supervised(epochs, batch int64) openai.FineTuningJobNewParamsMethod {
	return openai.FineTuningJobNewParamsMethod{Type: "supervised", Supervised: openai.SupervisedMethodParam{Hyperparameters: openai.SupervisedHyperparameters{
		NEpochs:   openai.SupervisedHyperparametersNEpochsUnion{OfInt: openai.Int(epochs)},
		BatchSize: openai.SupervisedHyperparametersBatchSizeUnion{OfInt: openai.Int(batch)},
	}}}
}

// waitEvent waits until one of a job's events satisfies match.
func waitEvent(t *testing.T, c openai.Client, job string, within time.Duration, match func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last []string
	for time.Now().Before(deadline) {
		evs, err := c.FineTuning.Jobs.ListEvents(t.Context(), job, openai.FineTuningJobListEventsParams{Limit: openai.Int(100)})
		if err != nil {
			t.Fatal(err)
		}
		last = last[:0]
		// Oldest first, so that match sees them in order.
		for i := len(evs.Data) - 1; i >= 0; i-- {
			last = append(last, evs.Data[i].Message)
			if match(evs.Data[i].Message) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("job %s: the event awaited did not come within %s; events:\n%s", job, within, strings.Join(last, "\n"))
}

// waitJob waits until a job has ended.
func waitJob(t *testing.T, c openai.Client, id string, within time.Duration) *openai.FineTuningJob {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		j, err := c.FineTuning.Jobs.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		switch j.Status {
		case "succeeded", "failed", "cancelled":
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %s", id, j.Status, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
