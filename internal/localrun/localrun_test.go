package localrun_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	vault "github.com/hashicorp/vault/api"
	"github.com/jackc/pgx/v5"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/localrun"
	"github.com/bulkhead-mesh/bulkhead/internal/modelsctl"
	"github.com/bulkhead-mesh/bulkhead/internal/sdkcheck"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/internal/upstreamtest"
)

// syncBuffer collects the progress report written by Run's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// readEnv parses the `export K='V'` lines of .bulkhead/env.
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		env[k] = strings.Trim(v, "'")
	}
	return env
}

// buildServices builds the service binaries, as `make run` does.
func buildServices(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join("..", "..")
	args := []string{"build", "-o", dir + "/"}
	for _, s := range []string{"auth", "users", "models", "chat", "inference", "training", "webhooks", "api"} {
		args = append(args, "./services/"+s+"/cmd/bulkhead-"+s)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// The whole `make run`: dependencies, control plane, every service as a
// process on the mesh, the development key; a chat completion through the
// public API; Ctrl-C stops everything in reverse order.
func TestUpRunsThePlatformAndStopsIt(t *testing.T) {
	// PostgreSQL may run as another user when tests run as root: the state
	// directory must be reachable, as .bulkhead/ in the repository is.
	state := filepath.Join(testenv.ReachableTempDir(t), ".bulkhead")
	envPath := filepath.Join(state, "env")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	bin := buildServices(t)
	port, err := components.QuietPort()
	if err != nil {
		t.Fatal(err)
	}
	api := fmt.Sprintf("127.0.0.1:%d", port)
	// A local OpenAI-compatible server (one that calls tools), served as
	// model "tiny" by --upstream tiny=URL.
	tiny := upstreamtest.New(t, "tiny", 3)
	go func() {
		done <- localrun.Run(ctx, localrun.Options{StateDir: state, Out: out, MeshDir: filepath.Join("..", "..", "policies", "mesh"),
			ModelsDir: filepath.Join("..", "..", "policies", "models"), Upstreams: []localrun.Upstream{{Name: "tiny", URL: tiny.URL()}},
			XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0", APIAddress: api, BinDir: bin})
	}()

	testenv.Eventually(t, 3*time.Minute, "bulkhead up ready", func() error {
		select {
		case err := <-done:
			t.Fatalf("Run returned before it was ready: %v\n%s", err, out)
		default:
		}
		if !strings.Contains(out.String(), "press Ctrl-C to stop") {
			return fmt.Errorf("not yet; so far:\n%s", out)
		}
		return nil
	})
	for _, name := range []string{"postgres", "redis", "vault", "kafka", "control", "users-1", "models-1", "inference-1", "inference-2",
		"inference-fallback-1", "auth-1", "auth-cache-1", "chat-1", "training-1", "webhooks-1", "api-1", "ratelimit"} {
		if !strings.Contains(out.String(), "  "+name) {
			t.Errorf("report does not mention %s:\n%s", name, out)
		}
	}
	// The rate-limit service proved its identity over mTLS and received the
	// platform's global rules: one domain per gateway listener.
	if !strings.Contains(out.String(), "rules for 2 gateway listeners from the control plane") {
		t.Errorf("the rate-limit service's rules are not reported:\n%s", out)
	}
	if _, err := exec.LookPath("envoy"); err != nil && !strings.Contains(out.String(), "skipped: no envoy binary on PATH") {
		t.Errorf("without envoy, the report must say the edge is not started:\n%s", out)
	}
	st, err := os.Stat(envPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %s; credentials need 0600", envPath, st.Mode().Perm())
	}
	env := readEnv(t, envPath)

	// Every dependency answers with the credentials written in env.
	conn, err := pgx.Connect(ctx, env["BULKHEAD_POSTGRES_DSN"])
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("postgres SELECT 1: %d, %v", one, err)
	}
	conn.Close(ctx)

	rdb := redis.NewClient(&redis.Options{Addr: env["BULKHEAD_REDIS_ADDR"], Password: env["BULKHEAD_REDIS_PASSWORD"]})
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis: %v", err)
	}
	rdb.Close()

	vcfg := vault.DefaultConfig()
	vcfg.Address = env["VAULT_ADDR"]
	vc, err := vault.NewClient(vcfg)
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(env["VAULT_TOKEN"])
	if _, err := vc.KVv2("secret").Put(ctx, "smoke", map[string]any{"ok": "yes"}); err != nil {
		t.Fatalf("vault: %v", err)
	}

	// The control plane answers on its admin endpoint with the mesh's status.
	var resp *http.Response
	testenv.Eventually(t, 20*time.Second, "the control plane's /healthz", func() error {
		if resp, err = http.Get("http://" + env["BULKHEAD_ADMIN_ADDR"] + "/healthz"); err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			resp.Body.Close()
			return fmt.Errorf("/healthz: %s", resp.Status)
		}
		return nil
	})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("control plane admin: %v %v", resp, err)
	}
	resp.Body.Close()

	// The rate-limit service counts in Redis as its own ACL user, with the
	// platform's rules: a key's first request of 1,200 a minute.
	rlc, err := grpc.NewClient(env["BULKHEAD_RATELIMIT_ADDR"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	decision, err := rlsv3.NewRateLimitServiceClient(rlc).ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "default/ai/10082", HitsAddend: 1,
		Descriptors: []*commonrlv3.RateLimitDescriptor{{Entries: []*commonrlv3.RateLimitDescriptor_Entry{{Key: "rule", Value: "default/gateways/per-key"}, {Key: "key_id", Value: "k1"}}}}})
	rlc.Close()
	if err != nil || decision.GetOverallCode() != rlsv3.RateLimitResponse_OK || decision.GetStatuses()[0].GetLimitRemaining() != 1199 {
		t.Fatalf("rate-limit decision: %v %v", decision, err)
	}

	kc, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(env["BULKHEAD_KAFKA_SEEDS"], ",")...),
		kgo.SASL(scram.Auth{User: env["BULKHEAD_KAFKA_USER"], Pass: env["BULKHEAD_KAFKA_PASSWORD"]}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.Ping(ctx); err != nil {
		t.Fatalf("kafka: %v", err)
	}
	kc.Close()

	// A chat completion through the public API with the development key.
	key, err := os.ReadFile(filepath.Join(state, "dev-api-key"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(state, "dev-api-key")); st.Mode().Perm() != 0o600 {
		t.Errorf("dev-api-key mode %s", st.Mode().Perm())
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+api+"/v1/chat/completions",
		strings.NewReader(`{"model": "deepseek-chat", "messages": [{"role": "user", "content": "What is light?"}], "max_tokens": 12}`))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
	cresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(cresp.Body)
	cresp.Body.Close()
	if cresp.StatusCode != 200 || !strings.Contains(string(body), `"object":"chat.completion"`) {
		t.Fatalf("chat completion: %d %s", cresp.StatusCode, body)
	}
	// The upstream of --upstream serves its model, and `bulkhead models`
	// shows it and the platform's models as configuration.
	req, _ = http.NewRequestWithContext(ctx, "POST", "http://"+api+"/v1/chat/completions",
		strings.NewReader(`{"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
	if cresp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(cresp.Body)
	cresp.Body.Close()
	if cresp.StatusCode != 200 || !strings.Contains(string(body), fmt.Sprintf(`"content":%q`, tiny.Full())) {
		t.Fatalf("model tiny: %d %s", cresp.StatusCode, body)
	}
	// The official OpenAI SDKs against the platform as make run runs it
	// (one process per service, mTLS), tools through tiny: Go's stream
	// accumulator, then the Node SDK's checks.
	client := openai.NewClient(option.WithBaseURL("http://"+api+"/v1/"), option.WithAPIKey(strings.TrimSpace(string(key))), option.WithMaxRetries(0))
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:    "tiny",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Paris?")},
		Tools:    []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_weather"})},
	})
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil || len(acc.Choices) != 1 || len(acc.Choices[0].Message.ToolCalls) != 1 ||
		acc.Choices[0].Message.ToolCalls[0].Function.Arguments != strings.Join(upstreamtest.ToolArguments, "") {
		t.Fatalf("the Go SDK's streamed tool call through bulkhead up: %+v (%v)", acc.Choices, err)
	}
	sdkcheck.Node(t, filepath.Join("..", ".."), "http://"+api, strings.TrimSpace(string(key)), "tiny")
	mctl := modelsctl.Client{StateDir: state}
	testenv.Eventually(t, 20*time.Second, "bulkhead models list", func() error {
		var list strings.Builder
		if err := mctl.List(ctx, &list); err != nil {
			return err
		}
		for _, want := range []string{"tiny  ", "deepseek-v4-flash  "} {
			line := ""
			for _, l := range strings.Split(list.String(), "\n") {
				if strings.HasPrefix(l, want) {
					line = l
				}
			}
			if !strings.Contains(line, "config") || strings.Count(line, "True") != 2 {
				return fmt.Errorf("%s is not accepted and ready as configuration:\n%s", strings.TrimSpace(want), list.String())
			}
		}
		return nil
	})
	if eps, _ := os.ReadDir(filepath.Join(state, "endpoints")); len(eps) != 12 {
		t.Errorf("%d endpoint files; want one per process (11 service processes and the rate-limit service)", len(eps))
	}

	// A second `bulkhead up` on the same state is refused, not interleaved.
	err = localrun.Run(ctx, localrun.Options{StateDir: state, Out: &syncBuffer{}})
	if err == nil || !strings.Contains(err.Error(), "another `bulkhead up` is running") {
		t.Fatalf("second Run: %v; want the lock error", err)
	}

	// Ctrl-C: everything stops, in reverse order, and the credentials go.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within 1m of cancellation")
	}
	report := out.String()
	stopped := func(name string) int { return strings.Index(report, fmt.Sprintf("  %-20s stopped", name)) }
	if i, j, k := stopped("postgres"), stopped("kafka"), stopped("api-1"); i < 0 || j < 0 || k < 0 || j > i || k > j {
		t.Errorf("want api-1, then kafka, then postgres stopped:\n%s", report)
	}
	if eps, _ := os.ReadDir(filepath.Join(state, "endpoints")); len(eps) != 0 {
		t.Errorf("%d endpoint files left after stop", len(eps))
	}
	if _, err := os.Stat(envPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after stop: %v", envPath, err)
	}
	shortCtx, shortCancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer shortCancel()
	if c, err := pgx.Connect(shortCtx, env["BULKHEAD_POSTGRES_DSN"]); err == nil {
		c.Close(shortCtx)
		t.Fatal("postgres still accepts connections after stop")
	}
}
