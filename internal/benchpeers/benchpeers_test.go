package benchpeers

import (
	"bytes"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// The upstream is what the official SDK takes for OpenAI, streaming or not.
func TestUpstreamSpeaksOpenAI(t *testing.T) {
	srv := httptest.NewServer(UpstreamHandler())
	defer srv.Close()
	c := openai.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey("x"), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{Model: "bench", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	res, err := c.Chat.Completions.New(t.Context(), params)
	if err != nil || res.Choices[0].Message.Content != Reply || res.Usage.TotalTokens == 0 {
		t.Fatalf("completion %+v, %v", res, err)
	}
	stream := c.Chat.Completions.NewStreaming(t.Context(), params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil || acc.Choices[0].Message.Content != Reply || acc.Usage.TotalTokens == 0 {
		t.Fatalf("stream %q, usage %+v, %v", acc.Choices[0].Message.Content, acc.Usage, err)
	}
	models, err := c.Models.List(t.Context())
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != "bench" {
		t.Fatalf("models %+v, %v", models, err)
	}
}

// The process accounting reads this process's own CPU and memory.
func TestProcessAccounting(t *testing.T) {
	pids := tree(os.Getpid())
	if len(pids) == 0 || pids[0] != os.Getpid() {
		t.Fatalf("tree %v", pids)
	}
	before := cpuSeconds(pids)
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	if after := cpuSeconds(pids); after-before < 0.1 {
		t.Fatalf("300 ms of spinning counted as %.2f CPU s", after-before)
	}
	if rss := rssBytes(pids); rss < 1<<20 {
		t.Fatalf("resident memory %d bytes", rss)
	}
}

// The report compares each target with direct at the same rate and names
// the highest rate held.
func TestReport(t *testing.T) {
	var b bytes.Buffer
	Report(&b, []Result{
		{Target: "direct", Rate: 100, Requests: 1000, P50: time.Millisecond, P99: 2 * time.Millisecond},
		{Target: "portkey", Rate: 100, Requests: 1000, P50: 3 * time.Millisecond, P99: 12 * time.Millisecond},
		{Target: "portkey", Rate: 300, Requests: 3000, P50: 30 * time.Millisecond, P99: 80 * time.Millisecond},
	})
	out := b.String()
	for _, want := range []string{"| portkey | 100 | 3.00 | 12.00 |", "| 2.00 | 10.00 |", "portkey: highest rate held (p99 < 50 ms, no errors): 100 req/s"} {
		if !strings.Contains(out, want) {
			t.Fatalf("report lacks %q:\n%s", want, out)
		}
	}
}

// The services' metrics addresses are read from bulkhead up's report;
// the rate-limit service (no profiles) is not one of them.
func TestMetricsAddresses(t *testing.T) {
	log := t.TempDir() + "/up.log"
	os.WriteFile(log, []byte(`  chat-1               starting ... up in 230ms at 127.0.0.1:40225 (metrics http://127.0.0.1:41095/metrics, log /x/chat-1.log)
  ratelimit            starting ... up in 60ms at 127.0.0.1:34933 (rules for 2 gateway listeners; metrics http://127.0.0.1:45989/metrics)
  inference-fallback-1 starting ... up in 210ms at 127.0.0.1:40327 (metrics http://127.0.0.1:39227/metrics, log /x/f.log)
`), 0o600)
	got := metricsAddresses(log)
	if len(got) != 2 || got["chat-1"] != "127.0.0.1:41095" || got["inference-fallback-1"] != "127.0.0.1:39227" {
		t.Fatalf("metrics addresses %v", got)
	}
}
