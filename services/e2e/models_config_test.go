package e2e_test

import (
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/internal/upstreamtest"
	"github.com/bulkhead-mesh/bulkhead/services/models"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

// localModel is a Model object with three upstreams: a (weight 3, its
// API key in Vault) and b (weight 1) at priority 0, c at priority 1.
func localModel(a, b, c *upstreamtest.Server, baseA string) string {
	return fmt.Sprintf(`apiVersion: models.bulkhead.dev/v1alpha1
kind: Model
metadata: {name: local}
spec:
  engine: openai
  limits: {contextLength: 8192, maxOutputTokens: 1024, defaultMaxTokens: 64}
  prices: {cacheMiss: "0.1", output: "0.2"}
  fallbacks: [deepseek-v4-flash]
  passiveHealth: {consecutiveFailures: 2, ejectionTime: 5s}
  backends:
  - name: a
    baseURL: %s
    model: up
    weight: 3
    apiKey: {vaultPath: bulkhead/upstreams/a}
  - {name: b, baseURL: %s, model: up, weight: 1}
  - {name: c, baseURL: %s, model: up, priority: 1}
`, baseA, b.URL(), c.URL())
}

// Models declared as configuration: a directory of Model objects the
// models service watches, applied without a restart, with status; the
// upstreams of one model balanced by inference (weighted split within a
// priority, passive ejection and return, failover to the next priority,
// a stream continued on another upstream), and the fallback chain across
// models when no upstream answers.
func TestModelsAsConfiguration(t *testing.T) {
	a, b, c := upstreamtest.New(t, "a", 12), upstreamtest.New(t, "b", 12), upstreamtest.New(t, "c", 12)
	a.Key = "key-of-a"
	dir := t.TempDir()
	p := stack.StartPlatform(t, stack.PlatformOptions{Models: models.Options{ConfigDirs: []string{dir}, ProbeInterval: 200 * time.Millisecond}})
	ctx := t.Context()
	v, err := p.Vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	// The key is bound to a's host: nowhere else is it sent.
	if _, err := v.KVv2("secret").Put(ctx, "bulkhead/upstreams/a", map[string]any{"api_key": a.Key, "hosts": hostOf(t, a)}); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mc := modelsv1.NewModelsServiceClient(p.Dial("models"))
	config := func(name string) (*modelsv1.ModelConfig, error) {
		res, err := mc.ListModelConfigs(ctx, &modelsv1.ListModelConfigsRequest{}, grpc.WaitForReady(true))
		if err != nil {
			return nil, err
		}
		for _, c := range res.Configs {
			if c.Name == name {
				return c, nil
			}
		}
		return nil, fmt.Errorf("no Model %s in the status (errors %v)", name, res.Errors)
	}
	url := p.APIURL + "/v1/chat/completions"
	var seq sync.Mutex
	n := 0
	// ask sends one request to model, each with a new conversation (so
	// that they spread over both inference replicas).
	ask := func(model string, extra map[string]any) response {
		seq.Lock()
		n++
		i := n
		seq.Unlock()
		body := map[string]any{"model": model, "messages": []map[string]any{{"role": "user", "content": fmt.Sprintf("question %d", i)}}}
		for k, v := range extra {
			body[k] = v
		}
		return do(t, ctx, "POST", url, p.Key, body)
	}
	served := func(r response) (model, text string) {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		v := r.json(t)
		return v["model"].(string), content(t, v)
	}
	// load sends count requests, 8 at a time; each must be served by
	// local with the upstreams' whole text.
	load := func(count int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan string, count)
		sem := make(chan struct{}, 8)
		for range count {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r := ask("local", nil)
				if r.status != 200 {
					errs <- fmt.Sprintf("%d %s", r.status, r.body)
					return
				}
				v := r.json(t)
				if got := content(t, v); got != a.Full() || v["model"] != "local" {
					errs <- fmt.Sprintf("model %v said %q", v["model"], got)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Fatal(e)
		}
	}
	counts := func() (int64, int64, int64) { return a.Calls(), b.Calls(), c.Calls() }

	write("local.yaml", localModel(a, b, c, a.URL()))
	testenv.Eventually(t, 20*time.Second, "Model local accepted and ready", func() error {
		mc, err := config("local")
		if err != nil {
			return err
		}
		return testenv.Until(mc.Accepted && mc.Ready && mc.Version > 0, "accepted=%v (%s) ready=%v (%s)", mc.Accepted, mc.AcceptedMessage, mc.Ready, mc.ReadyMessage)
	})

	t.Run("weighted split within a priority", func(t *testing.T) {
		a0, b0, c0 := counts()
		load(160)
		a1, b1, c1 := counts()
		da, db := a1-a0, b1-b0
		if c1 != c0 || da+db != 160 {
			t.Fatalf("calls a %d, b %d, c %d; want 160 on a and b only", da, db, c1-c0)
		}
		// Weights 3:1: a's share is 0.75 (binomial sd 0.034 over 160).
		if share := float64(da) / 160; share < 0.62 || share > 0.88 {
			t.Fatalf("a served %.2f of the calls (a %d, b %d); weights say 0.75", share, da, db)
		}
	})

	t.Run("a failing upstream is ejected, its calls go elsewhere, and it returns", func(t *testing.T) {
		a.Set("fail")
		a0, _, _ := counts()
		// Every call a fails is served by another upstream within the same
		// call; each replica ejects a after two consecutive failures (a few
		// more may be in flight by then).
		load(40)
		a1, _, _ := counts()
		if a1 == a0 {
			t.Fatal("a got no call")
		}
		ejections := 0
		for _, inst := range []string{"inference-1", "inference-2"} {
			e := metric(t, p, inst, "bulkhead_inference_upstream_ejections", `upstream="a"`)
			if e > 1 {
				t.Fatalf("%s ejected a %d times within its ejection time", inst, e)
			}
			ejections += e
		}
		if ejections == 0 {
			t.Fatal("no replica ejected a")
		}
		// Ejected (for 5s, far longer than these calls take), a gets none.
		if ejections == 2 {
			load(40)
			if a2, _, _ := counts(); a2 != a1 {
				t.Fatalf("a, ejected by both replicas, got %d calls", a2-a1)
			}
		}
		a.Set("ok")
		testenv.Eventually(t, 15*time.Second, "a serves again after its ejection time", func() error {
			before := a.Calls()
			load(8)
			return testenv.Until(a.Calls() > before, "a got no call")
		})
	})

	t.Run("failover to the next priority", func(t *testing.T) {
		a.Set("fail")
		b.Set("fail")
		defer a.Set("ok")
		defer b.Set("ok")
		_, _, c0 := counts()
		load(20)
		if _, _, c1 := counts(); c1-c0 != 20 {
			t.Fatalf("c served %d of 20 calls while a and b failed", c1-c0)
		}
	})

	t.Run("a stream cut by its upstream is continued on another", func(t *testing.T) {
		// Ejections from before expire: a and b take calls again.
		testenv.Eventually(t, 20*time.Second, "a and b serve", func() error {
			a0, b0, _ := counts()
			load(8)
			a1, b1, _ := counts()
			return testenv.Until(a1 > a0 && b1 > b0, "a got %d calls, b %d", a1-a0, b1-b0)
		})
		for _, u := range []*upstreamtest.Server{a, b} {
			u.CutAfter.Store(4)
			u.Set("cut")
		}
		defer a.Set("ok")
		defer b.Set("ok")
		var wg sync.WaitGroup
		errs := make(chan error, 10)
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := streamReply(url, p.Key, map[string]any{"model": "local", "stream": true, "stream_options": map[string]any{"include_usage": true},
					"messages": []map[string]any{{"role": "user", "content": fmt.Sprintf("stream %d", i)}}}, nil)
				switch {
				case err != nil:
					errs <- err
				case got.content != a.Full() || got.finish != "stop" || got.errorEvent != "":
					errs <- fmt.Errorf("reply %q (finish %q, error %s); want %q", got.content, got.finish, got.errorEvent, a.Full())
				case int(got.usage["completion_tokens"].(float64)) != tokens.Count(a.Full()):
					errs <- fmt.Errorf("billed %v completion tokens for a reply of %d", got.usage["completion_tokens"], tokens.Count(a.Full()))
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var prefixes []string
		for _, u := range []*upstreamtest.Server{a, b, c} {
			prefixes = append(prefixes, u.Prefixes()...)
		}
		if len(prefixes) == 0 {
			t.Fatal("no stream was continued from a prefix")
		}
		for _, pre := range prefixes {
			if pre != strings.Join(a.Words[:4], "") {
				t.Fatalf("continued from %q; the cut streams had sent %q", pre, strings.Join(a.Words[:4], ""))
			}
		}
	})

	t.Run("every upstream failing: the fallback model serves at once", func(t *testing.T) {
		// They fail their calls but answer the probe: the model stays
		// Ready, and still no request fails, for chat falls back.
		for _, u := range []*upstreamtest.Server{a, b, c} {
			u.Set("fail")
		}
		defer func() {
			for _, u := range []*upstreamtest.Server{a, b, c} {
				u.Set("ok")
			}
		}()
		_, key := newKey(t, p, accountRequest("fallback"))
		r := do(t, ctx, "POST", url, key, map[string]any{"model": "local", "messages": []map[string]any{{"role": "user", "content": "What is light?"}}})
		if r.status != 200 {
			t.Fatalf("with every upstream failing: %d %s", r.status, r.body)
		}
		v := r.json(t)
		if v["model"] != "deepseek-v4-flash" || content(t, v) == "" {
			t.Fatalf("served by %v: %q", v["model"], content(t, v))
		}
		// Billed at most at local's prices (flash's are higher): never
		// more than what was asked for, nor than was reserved.
		prompt, completion, _, _, _ := usageOf(t, v)
		want := int64(math.Ceil((float64(prompt)*100000 + float64(completion)*200000) / 1e6))
		// The ledger follows the usage events: eventually, not at once.
		testenv.Eventually(t, 30*time.Second, "the request in the ledger", func() error {
			u := do(t, ctx, "GET", p.APIURL+"/v1/usage", key, nil).json(t)["total"].(map[string]any)
			got := int64(u["cost_micros"].(float64))
			return testenv.Until(got == want, "billed %d micros; local's prices make %d", got, want)
		})
		// Streamed: the chunks after the first name the model that serves.
		got, err := streamReply(url, key, map[string]any{"model": "local", "stream": true, "max_tokens": 20,
			"messages": []map[string]any{{"role": "user", "content": "What is light?"}}}, nil)
		if err != nil || got.content == "" || got.finish == "" || got.model != "deepseek-v4-flash" {
			t.Fatalf("streamed: %q, finish %q, model %q (%v)", got.content, got.finish, got.model, err)
		}
		if st, err := config("local"); err != nil || !st.Ready {
			t.Fatalf("local is not ready (%v): the probe should still pass", err)
		}
		if n := sum(scrape(t, p, "chat-1"), "bulkhead_chat_fallbacks", `fallback="deepseek-v4-flash"`); n < 2 {
			t.Fatalf("%v fallbacks counted", n)
		}
	})

	t.Run("no upstream answers: the fallback model serves", func(t *testing.T) {
		for _, u := range []*upstreamtest.Server{a, b, c} {
			u.Set("down")
		}
		// chat falls back at once (above); the probe then marks local
		// not ready, and Resolve serves the fallback from the start.
		testenv.Eventually(t, 15*time.Second, "local falls back to deepseek-v4-flash", func() error {
			r := ask("local", nil)
			if r.status != 200 {
				return fmt.Errorf("%d %s", r.status, r.body)
			}
			return testenv.Until(r.json(t)["model"] == "deepseek-v4-flash", "served by %s", r.json(t)["model"])
		})
		st, err := config("local")
		if err != nil {
			t.Fatal(err)
		}
		if st.Ready || !strings.Contains(st.ReadyMessage, "no backend answered") {
			t.Fatalf("ready=%v: %s", st.Ready, st.ReadyMessage)
		}
		for _, u := range []*upstreamtest.Server{a, b, c} {
			u.Set("ok")
		}
		testenv.Eventually(t, 15*time.Second, "local serves again", func() error {
			model, _ := served(ask("local", nil))
			return testenv.Until(model == "local", "served by %s", model)
		})
	})

	t.Run("a refused edit leaves the last accepted version in force", func(t *testing.T) {
		before, err := config("local")
		if err != nil {
			t.Fatal(err)
		}
		write("local.yaml", localModel(a, b, c, "ftp://127.0.0.1/v1"))
		write("broken.yaml", "apiVersion: models.bulkhead.dev/v1alpha1\nkind: Model\nmetadata: {name: broken}\nspec: {engine: builtin, limits: {contextLength: 100}, backend: []}\n")
		testenv.Eventually(t, 10*time.Second, "the edit refused", func() error {
			st, err := config("local")
			if err != nil {
				return err
			}
			return testenv.Until(!st.Accepted && strings.Contains(st.AcceptedMessage, `spec.backends[0].baseURL: "ftp://127.0.0.1/v1" must be an http:// or https:// URL`) &&
				strings.Contains(st.AcceptedMessage, fmt.Sprintf("version %d, accepted before, stays in force", before.Version)), "%v: %s", st.Accepted, st.AcceptedMessage)
		})
		if model, text := served(ask("local", nil)); model != "local" || text != a.Full() {
			t.Fatalf("after a refused edit, %s said %q", model, text)
		}
		st, err := config("broken")
		if err != nil {
			t.Fatal(err)
		}
		if st.Accepted || !strings.Contains(st.AcceptedMessage, `unknown field "spec.backend"`) || st.Version != 0 {
			t.Fatalf("broken: accepted=%v version %d: %s", st.Accepted, st.Version, st.AcceptedMessage)
		}
		if r := ask("broken", nil); r.status != 422 {
			t.Fatalf("a refused new model answered %d %s", r.status, r.body)
		}
		write("local.yaml", localModel(a, b, c, a.URL()))
		os.Remove(filepath.Join(dir, "broken.yaml"))
		testenv.Eventually(t, 10*time.Second, "the fix accepted", func() error {
			st, err := config("local")
			if err != nil {
				return err
			}
			return testenv.Until(st.Accepted && st.Version == before.Version, "accepted=%v version %d (before %d): %s", st.Accepted, st.Version, before.Version, st.AcceptedMessage)
		})
	})

	t.Run("a Model in a directory made later is applied", func(t *testing.T) {
		sub := filepath.Join(dir, "team")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		// Written at once: the directory is watched before it is read
		// again, so a file written before the watch is read then.
		if err := os.WriteFile(filepath.Join(sub, "nested.yaml"), []byte("apiVersion: models.bulkhead.dev/v1alpha1\nkind: Model\nmetadata: {name: nested}\nspec:\n  engine: builtin\n  limits: {contextLength: 4096, maxOutputTokens: 64}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, "nested accepted", func() error {
			mc, err := config("nested")
			if err != nil {
				return err
			}
			return testenv.Until(mc.Accepted, "%s", mc.AcceptedMessage)
		})
		if err := os.RemoveAll(sub); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("visibility per account", func(t *testing.T) {
		write("private.yaml", "apiVersion: models.bulkhead.dev/v1alpha1\nkind: Model\nmetadata: {name: private}\nspec:\n  engine: builtin\n  limits: {contextLength: 8192, maxOutputTokens: 64}\n  visibility: {accounts: [someone-else]}\n")
		testenv.Eventually(t, 10*time.Second, "private registered", func() error {
			st, err := config("private")
			if err != nil {
				return err
			}
			return testenv.Until(st.Accepted && st.Version > 0, "%v: %s", st.Accepted, st.AcceptedMessage)
		})
		if r := ask("private", nil); r.status != 422 {
			t.Fatalf("a model of another account answered %d %s", r.status, r.body)
		}
		if r := do(t, ctx, "GET", p.APIURL+"/v1/models", p.Key, nil); r.status != 200 || jsonContains(r.body, `"private"`) {
			t.Fatalf("models list %d: %s", r.status, r.body)
		}
		write("private.yaml", strings.Replace(readFile(t, filepath.Join(dir, "private.yaml")), "someone-else", p.Account, 1))
		testenv.Eventually(t, 10*time.Second, "private visible to its account", func() error {
			r := ask("private", map[string]any{"max_tokens": 5})
			return testenv.Until(r.status == 200, "%d %s", r.status, r.body)
		})
	})

	t.Run("a removed object disables its model, and it comes back", func(t *testing.T) {
		os.Remove(filepath.Join(dir, "local.yaml"))
		testenv.Eventually(t, 10*time.Second, "local disabled", func() error {
			res, err := mc.ListModels(ctx, &modelsv1.ListModelsRequest{IncludeUnavailable: true})
			if err != nil {
				return err
			}
			for _, m := range res.Models {
				if m.Name == "local" {
					return testenv.Until(m.State == modelsv1.ModelState_MODEL_STATE_DISABLED && m.StateReason == "removed from the configuration", "%v %q", m.State, m.StateReason)
				}
			}
			return fmt.Errorf("local is gone from the registry")
		})
		if model, _ := served(ask("local", nil)); model != "deepseek-v4-flash" {
			t.Fatalf("a removed model with fallbacks served as %s", model)
		}
		write("local.yaml", localModel(a, b, c, a.URL()))
		testenv.Eventually(t, 10*time.Second, "local back", func() error {
			model, _ := served(ask("local", nil))
			return testenv.Until(model == "local", "served by %s", model)
		})
	})

	t.Run("an API key goes only to the hosts of its secret", func(t *testing.T) {
		// A Model that points a's key at b: neither the probe nor a
		// request sends it there.
		write("stray.yaml", fmt.Sprintf("apiVersion: models.bulkhead.dev/v1alpha1\nkind: Model\nmetadata: {name: stray}\nspec:\n  engine: openai\n  limits: {contextLength: 4096, maxOutputTokens: 64}\n"+
			"  backends: [{name: s, baseURL: %q, model: up, apiKey: {vaultPath: bulkhead/upstreams/a}}]\n", b.URL()))
		testenv.Eventually(t, 20*time.Second, "stray not ready, for its key's hosts", func() error {
			mc, err := config("stray")
			if err != nil {
				return err
			}
			return testenv.Until(mc.Accepted && !mc.Ready && strings.Contains(mc.ReadyMessage, "binds its key to hosts="), "accepted=%v ready=%v (%s)", mc.Accepted, mc.Ready, mc.ReadyMessage)
		})
		before := b.Calls()
		if r := ask("stray", nil); r.status == 200 {
			t.Fatalf("stray served: %s", r.body)
		}
		if b.SawAuthorization("Bearer "+a.Key) || b.Calls() != before {
			t.Fatal("a's API key was sent to b")
		}
		if err := os.Remove(filepath.Join(dir, "stray.yaml")); err != nil {
			t.Fatal(err)
		}
	})
}

// hostOf is an upstream's host:port.
func hostOf(t *testing.T, u *upstreamtest.Server) string {
	t.Helper()
	parsed, err := url.Parse(u.URL())
	if err != nil {
		t.Fatal(err)
	}
	return parsed.Host
}

// writeUpstreamModel writes to dir a Model NAME served by the upstreams
// (backends up0, up1, ... in order, all at priority 0), with spec's extra
// lines (e.g. "thinking: enabled").
func writeUpstreamModel(t *testing.T, dir, name, spec string, ups ...*upstreamtest.Server) {
	t.Helper()
	var backends []string
	for i, u := range ups {
		backends = append(backends, fmt.Sprintf("{name: up%d, baseURL: %q, model: up}", i, u.URL()))
	}
	m := fmt.Sprintf("apiVersion: models.bulkhead.dev/v1alpha1\nkind: Model\nmetadata: {name: %s}\nspec:\n  engine: openai\n  limits: {contextLength: 4096, maxOutputTokens: 256}\n", name)
	if spec != "" {
		m += "  " + spec + "\n"
	}
	m += "  backends: [" + strings.Join(backends, ", ") + "]\n"
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// response_format json_object through an upstream: a reply that is a JSON
// object passes; one that is not, or that max_tokens cut, is an error
// naming the field (422 before anything was sent; the stream's error
// event after), never text that claims to be JSON and is not.
func TestUpstreamJSONObjectIsChecked(t *testing.T) {
	good := upstreamtest.New(t, "good", 0)
	good.Words = []string{`{"light":`, ` "refracted",`, ` "rays": 7}`}
	prose := upstreamtest.New(t, "prose", 6)
	dir := t.TempDir()
	writeUpstreamModel(t, dir, "jsonok", "", good)
	writeUpstreamModel(t, dir, "prose", "", prose)
	p := stack.StartPlatform(t, stack.PlatformOptions{Models: models.Options{ConfigDirs: []string{dir}}})
	ctx := t.Context()
	url := p.APIURL + "/v1/chat/completions"
	body := func(model string, extra map[string]any) map[string]any {
		b := map[string]any{"model": model, "response_format": map[string]any{"type": "json_object"},
			"messages": []map[string]any{{"role": "user", "content": "Answer in JSON: what becomes of light?"}}}
		for k, v := range extra {
			b[k] = v
		}
		return b
	}
	var r response
	testenv.Eventually(t, 20*time.Second, "jsonok served", func() error {
		r = do(t, ctx, "POST", url, p.Key, body("jsonok", nil))
		return testenv.Until(r.status == 200, "%d %s", r.status, r.body)
	})
	var obj map[string]any
	if err := jsonUnmarshal(content(t, r.json(t)), &obj); err != nil || obj["rays"] != float64(7) {
		t.Fatalf("json_object reply %q: %v", content(t, r.json(t)), err)
	}
	r = do(t, ctx, "POST", url, p.Key, body("prose", nil))
	if msg, _, _, param := r.errorOf(t); r.status != 422 || param != "response_format" || !strings.Contains(msg, "not a JSON object") {
		t.Fatalf("prose as json_object: %d %s", r.status, r.body)
	}
	// Streamed: the text went out as it came; the stream ends with the
	// error event instead of a finish_reason and [DONE].
	got, err := streamReply(url, p.Key, body("prose", map[string]any{"stream": true}), nil)
	if err == nil || got.content != prose.Full() || !strings.Contains(got.errorEvent, `"param":"response_format"`) || got.finish != "" {
		t.Fatalf("streamed prose as json_object: %q, finish %q, error event %s (%v)", got.content, got.finish, got.errorEvent, err)
	}
}
