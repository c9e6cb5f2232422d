package e2e_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/webhooks"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/events"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
	"github.com/bulkhead-mesh/bulkhead/services/training"
	bhwebhooks "github.com/bulkhead-mesh/bulkhead/services/webhooks"
)

// receiver is a webhook endpoint in the test: it answers 500 to its first
// failures requests (or hangs for delay), then verifies each delivery's
// signature with the official SDK and records it.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	secret   string
	failures int
	delay    time.Duration
	requests int
	// ok counts the verified 2xx answers per webhook-id; events holds
	// each delivered event once, by id.
	ok     map[string]int
	events map[string]map[string]any
	bad    []string
}

func newReceiver(t *testing.T, failures int, delay time.Duration) *receiver {
	r := &receiver{failures: failures, delay: delay, ok: map[string]int{}, events: map[string]map[string]any{}}
	verifier := webhooks.NewWebhookService()
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests++
		n, secret := r.requests, r.secret
		r.mu.Unlock()
		if r.delay > 0 {
			select {
			case <-time.After(r.delay):
			case <-req.Context().Done():
			}
			return
		}
		if n <= r.failures {
			http.Error(w, "not yet", http.StatusInternalServerError)
			return
		}
		if err := verifier.VerifySignature(body, req.Header, option.WithWebhookSecret(secret)); err != nil {
			r.mu.Lock()
			r.bad = append(r.bad, err.Error())
			r.mu.Unlock()
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		// The signature covers the body: a byte changed fails.
		if verifier.VerifySignature(append([]byte(" "), body...), req.Header, option.WithWebhookSecret(secret)) == nil {
			t.Errorf("a changed body verified")
		}
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.ok[req.Header.Get("webhook-id")]++
		r.events[ev["id"].(string)] = ev
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

// typesSeen are the types of the events delivered, each event once.
func (r *receiver) typesSeen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		out = append(out, ev["type"].(string))
	}
	return out
}

func countOf(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// Webhooks through the public API with the official SDK's webhook
// endpoints and signature verification: a receiver that fails five times
// then succeeds gets each event (a fine-tuning job succeeded, another
// cancelled) exactly once; a budget's thresholds are told once each; an
// endpoint that always fails and one that hangs end in the dead letters,
// listed by the API, without holding up the others; private, link-local
// and loopback addresses are refused.
func TestWebhooks(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{
		Training: &training.Options{Worker: true, StepInterval: 100 * time.Millisecond},
		Webhooks: &bhwebhooks.Options{AllowNetworks: []string{"127.0.0.1/32"}, RetryBase: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond,
			RetryFor: 5 * time.Second, Timeout: time.Second},
	})
	ctx := t.Context()
	client := goSDK(p, "/v1/")
	jobTypes := []string{"fine_tuning.job.succeeded", "fine_tuning.job.cancelled"}

	t.Run("private addresses refused", func(t *testing.T) {
		for _, u := range []string{"http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data", "http://[::1]:9/hook", "http://192.168.1.20:8080/", "ftp://127.0.0.1/"} {
			_, err := client.Webhooks.New(ctx, webhooks.WebhookNewParams{URL: u, Name: "x", EventTypes: jobTypes})
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode/100 != 4 || apiErr.Param != "url" {
				t.Errorf("%s: %v", u, err)
			}
		}
		_, err := client.Webhooks.New(ctx, webhooks.WebhookNewParams{URL: "http://127.0.0.1:1/", Name: "x", EventTypes: []string{"fine_tuning.job.exploded"}})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.Param != "event_types" {
			t.Errorf("an unknown event type: %v", err)
		}
	})

	flaky := newReceiver(t, 5, 0)
	ep, err := client.Webhooks.New(ctx, webhooks.WebhookNewParams{URL: flaky.URL + "/hooks", Name: "jobs", EventTypes: jobTypes})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ep.SigningSecret, "whsec_") || ep.SigningSecretHint == "" || strings.Contains(ep.SigningSecretHint, ep.SigningSecret[6:]) {
		t.Fatalf("endpoint %+v", ep)
	}
	flaky.mu.Lock()
	flaky.secret = ep.SigningSecret
	flaky.mu.Unlock()
	failing := newReceiver(t, 1<<30, 0)
	slow := newReceiver(t, 0, time.Minute)
	for _, r := range []*receiver{failing, slow} {
		if _, err := client.Webhooks.New(ctx, webhooks.WebhookNewParams{URL: r.URL, Name: "doomed", EventTypes: []string{"fine_tuning.job.succeeded"}}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := client.Webhooks.List(ctx, webhooks.WebhookListParams{})
	if err != nil || len(list.Data) != 3 || strings.Contains(list.RawJSON(), ep.SigningSecret) {
		t.Fatalf("list: %d endpoints (%v); the secret must not be listed", len(list.Data), err)
	}

	// A job that succeeds, and one cancelled while it runs.
	f, err := client.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader(harbourFile(0, 3)), "h.jsonl", "application/jsonl"), Purpose: openai.FilePurposeFineTune})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := client.FineTuning.Jobs.New(ctx, openai.FineTuningJobNewParams{Model: "deepseek-chat", TrainingFile: f.ID, Method: supervised(1, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, client, ok.ID, 60*time.Second); j.Status != "succeeded" {
		t.Fatalf("job %s", j.Status)
	}
	long, err := client.FineTuning.Jobs.New(ctx, openai.FineTuningJobNewParams{Model: "deepseek-chat", TrainingFile: f.ID, Method: supervised(30, 2)})
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, client, long.ID, 30*time.Second, func(msg string) bool { return strings.HasPrefix(msg, "Step 2/") })
	if _, err := client.FineTuning.Jobs.Cancel(ctx, long.ID); err != nil {
		t.Fatal(err)
	}

	t.Run("each event delivered once after five failures", func(t *testing.T) {
		testenv.Eventually(t, 20*time.Second, "both job events delivered", func() error {
			if seen := flaky.typesSeen(); len(seen) != 2 || countOf(seen, "fine_tuning.job.succeeded") != 1 || countOf(seen, "fine_tuning.job.cancelled") != 1 {
				return fmt.Errorf("events delivered: %v", seen)
			}
			return nil
		})
		// Nothing more comes: each delivery succeeded exactly once.
		time.Sleep(time.Second)
		flaky.mu.Lock()
		defer flaky.mu.Unlock()
		if len(flaky.bad) > 0 {
			t.Fatalf("signatures that did not verify: %v", flaky.bad)
		}
		if len(flaky.ok) != 2 || flaky.requests != 5+2 {
			t.Fatalf("%d requests, successes by webhook-id %v; want 5 failures and 2 successes", flaky.requests, flaky.ok)
		}
		for id, n := range flaky.ok {
			if n != 1 {
				t.Fatalf("delivery %s succeeded %d times", id, n)
			}
		}
		for _, ev := range flaky.events {
			data, _ := ev["data"].(map[string]any)
			if ev["object"] != "event" || (data["id"] != ok.ID && data["id"] != long.ID) {
				t.Fatalf("event %v", ev)
			}
			if ev["type"] == "fine_tuning.job.succeeded" && data["fine_tuned_model"] == "" {
				t.Fatalf("the succeeded event names no model: %v", ev)
			}
		}
	})

	t.Run("given up on: dead letters", func(t *testing.T) {
		type letter struct {
			Endpoint   string `json:"endpoint_id"`
			EventType  string `json:"event_type"`
			Attempts   int    `json:"attempts"`
			LastStatus int    `json:"last_status"`
			LastError  string `json:"last_error"`
			Payload    string `json:"payload"`
		}
		var dead struct {
			Data []letter `json:"data"`
		}
		testenv.Eventually(t, 20*time.Second, "two dead letters", func() error {
			if err := client.Get(ctx, "webhooks/dead_letters", nil, &dead); err != nil {
				return err
			}
			if len(dead.Data) != 2 {
				return fmt.Errorf("%d dead letters", len(dead.Data))
			}
			return nil
		})
		var statuses, errs []string
		for _, d := range dead.Data {
			if d.EventType != "fine_tuning.job.succeeded" || d.Attempts < 3 || !strings.Contains(d.Payload, ok.ID) {
				t.Fatalf("dead letter %+v", d)
			}
			statuses = append(statuses, fmt.Sprint(d.LastStatus))
			errs = append(errs, d.LastError)
		}
		if countOf(statuses, "500") != 1 || countOf(statuses, "0") != 1 || !strings.Contains(strings.Join(errs, " "), "Timeout") {
			t.Fatalf("the failing endpoint's last status is 500 and the slow one's a timeout: %v %v", statuses, errs)
		}
		// Both are in the dead-letter topic.
		ends, err := p.KafkaAdmin().ListEndOffsets(ctx, events.WebhookDeadLetters.Name)
		if err != nil {
			t.Fatal(err)
		}
		var parked int64
		ends.Each(func(o kadm.ListedOffset) { parked += o.Offset })
		if parked != 2 {
			t.Fatalf("%d records in %s, want the 2 dead letters", parked, events.WebhookDeadLetters.Name)
		}
	})

	t.Run("budget thresholds told once each", func(t *testing.T) {
		_, key := newKey(t, p, &usersv1.CreateAccountRequest{Name: "budget", Tier: "enterprise", BalanceMicros: 400,
			Limits: &usersv1.Limits{RequestsPerMinute: 1 << 20, TokensPerMinute: 1 << 30}})
		c := openai.NewClient(option.WithBaseURL(p.APIURL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
		r := newReceiver(t, 0, 0)
		e, err := c.Webhooks.New(ctx, webhooks.WebhookNewParams{URL: r.URL, Name: "budget", EventTypes: []string{"budget.threshold.80", "budget.threshold.100"}})
		if err != nil {
			t.Fatal(err)
		}
		r.mu.Lock()
		r.secret = e.SigningSecret
		r.mu.Unlock()
		refused := 0
		for i := 0; i < 400 && refused < 3; i++ {
			_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "deepseek-chat", MaxTokens: openai.Int(16),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(fmt.Sprintf("Tell me about light, part %d", i))}})
			var apiErr *openai.Error
			switch {
			case err == nil:
			case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusPaymentRequired:
				refused++
			default:
				t.Fatal(err)
			}
		}
		if refused == 0 {
			t.Fatal("the budget was never exhausted")
		}
		testenv.Eventually(t, 20*time.Second, "both thresholds told", func() error {
			if seen := r.typesSeen(); len(seen) != 2 || countOf(seen, "budget.threshold.80") != 1 || countOf(seen, "budget.threshold.100") != 1 {
				return fmt.Errorf("events delivered: %v", seen)
			}
			return nil
		})
		r.mu.Lock()
		defer r.mu.Unlock()
		for id, n := range r.ok {
			if n != 1 {
				t.Fatalf("delivery %s succeeded %d times", id, n)
			}
		}
	})

	t.Run("delete", func(t *testing.T) {
		del, err := client.Webhooks.Delete(ctx, ep.ID)
		if err != nil || !del.Deleted {
			t.Fatalf("delete: %+v, %v", del, err)
		}
		var apiErr *openai.Error
		if _, err := client.Webhooks.Delete(ctx, ep.ID); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
			t.Fatalf("deleting it again: %v", err)
		}
	})
}
