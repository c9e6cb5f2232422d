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
