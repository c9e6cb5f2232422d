package inference_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/services/inference"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
)

type generation struct {
	started  *inferencev1.GenerateResponse_Started
	pieces   []string
	thoughts []string
	logprobs []*inferencev1.Logprob
	finished *inferencev1.GenerateResponse_Finished
}

func (g generation) text() string    { return strings.Join(g.pieces, "") }
func (g generation) thought() string { return strings.Join(g.thoughts, "") }

func request(prompt string, s *inferencev1.Sampling) *inferencev1.GenerateRequest {
	return &inferencev1.GenerateRequest{
		Engine: "builtin", Model: "opticks-3gram",
		Messages: []*inferencev1.Message{{Role: inferencev1.Role_ROLE_USER, Content: prompt}},
		Sampling: s,
	}
}

func generate(t *testing.T, c inferencev1.InferenceServiceClient, prompt string, s *inferencev1.Sampling) generation {
	t.Helper()
	g, err := generateRequest(t, c, request(prompt, s))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func generateRequest(t *testing.T, c inferencev1.InferenceServiceClient, req *inferencev1.GenerateRequest) (generation, error) {
	t.Helper()
	st, err := c.Generate(t.Context(), req, grpc.WaitForReady(true))
	if err != nil {
		return generation{}, err
	}
	var g generation
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return generation{}, err
		}
		switch e := r.Event.(type) {
		case *inferencev1.GenerateResponse_Started_:
			g.started = e.Started
		case *inferencev1.GenerateResponse_Delta_:
			if g.started == nil {
				t.Fatal("a delta before Started")
			}
			if (e.Delta.Content == "") == (e.Delta.ReasoningContent == "") {
				t.Fatalf("a delta must carry content or reasoning: %v", e.Delta)
			}
			g.logprobs = append(g.logprobs, e.Delta.Logprobs...)
			if e.Delta.Content != "" {
				g.pieces = append(g.pieces, e.Delta.Content)
			} else {
				g.thoughts = append(g.thoughts, e.Delta.ReasoningContent)
			}
		case *inferencev1.GenerateResponse_Finished_:
			g.finished = e.Finished
		}
	}
	if g.started == nil || g.finished == nil {
		t.Fatalf("generation without Started or Finished: %+v", g)
	}
	return g, nil
}

func ptr[T any](v T) *T { return &v }

// The builtin engine over the proxyless mesh: streaming, max_tokens, stop,
// seed, temperature 0 and the JSON response format.
func TestBuiltinEngineThroughTheMesh(t *testing.T) {
	s := stack.New(t)
	s.StartService("inference", inference.Setup(&inference.Options{}), stack.Options{})
	c := inferencev1.NewInferenceServiceClient(s.Dial("inference"))

	t.Run("streams and counts", func(t *testing.T) {
		g := generate(t, c, "Tell me about the colours of light", &inferencev1.Sampling{MaxTokens: ptr[int32](40), Seed: ptr[int64](7)})
		if len(g.pieces) < 5 {
			t.Fatalf("%d pieces: %q", len(g.pieces), g.text())
		}
		u := g.finished.GetUsage()
		if g.started.GetPromptTokens() == 0 || u.GetPromptTokens() != g.started.GetPromptTokens() {
			t.Errorf("prompt tokens: started %d, usage %d", g.started.GetPromptTokens(), u.GetPromptTokens())
		}
		if u.GetCompletionTokens() == 0 || u.GetCompletionTokens() > 40 {
			t.Errorf("completion tokens %d; want 1..40", u.GetCompletionTokens())
		}
	})
	t.Run("max_tokens", func(t *testing.T) {
		g := generate(t, c, "light", &inferencev1.Sampling{MaxTokens: ptr[int32](5), Temperature: ptr(0.0)})
		if g.finished.GetFinishReason() != inferencev1.FinishReason_FINISH_REASON_LENGTH || g.finished.GetUsage().GetCompletionTokens() != 5 {
			t.Fatalf("finish %v with %d tokens (%q); want LENGTH with 5", g.finished.GetFinishReason(), g.finished.GetUsage().GetCompletionTokens(), g.text())
		}
	})
	t.Run("same seed same output", func(t *testing.T) {
		s := &inferencev1.Sampling{MaxTokens: ptr[int32](60), Temperature: ptr(1.2), TopP: ptr(0.9), Seed: ptr[int64](1234)}
		a, b := generate(t, c, "prisms", s), generate(t, c, "prisms", s)
		if a.text() != b.text() {
			t.Fatalf("seed 1234 gave\n%q\nthen\n%q", a.text(), b.text())
		}
	})
	t.Run("stop", func(t *testing.T) {
		base := &inferencev1.Sampling{MaxTokens: ptr[int32](80), Temperature: ptr(0.0)}
		full := generate(t, c, "the Rays of Light", base).text()
		words := strings.Fields(full)
		if len(words) < 8 {
			t.Fatalf("too short to test stop: %q", full)
		}
		stop := " " + words[6]
		want := full[:strings.Index(full, stop)]
		base.Stop = []string{"never-there", stop}
		g := generate(t, c, "the Rays of Light", base)
		if g.text() != want || g.finished.GetFinishReason() != inferencev1.FinishReason_FINISH_REASON_STOP {
			t.Fatalf("with stop %q: %q (%v); want %q", stop, g.text(), g.finished.GetFinishReason(), want)
		}
	})
	t.Run("json_object", func(t *testing.T) {
		g := generate(t, c, "Answer in JSON", &inferencev1.Sampling{MaxTokens: ptr[int32](30), Seed: ptr[int64](3), ResponseFormat: inferencev1.ResponseFormat_RESPONSE_FORMAT_JSON_OBJECT})
		var v map[string]string
		if err := json.Unmarshal([]byte(g.text()), &v); err != nil || v["content"] == "" {
			t.Fatalf("not a JSON object with content: %q (%v)", g.text(), err)
		}
	})
	t.Run("thinking", func(t *testing.T) {
		think := &inferencev1.Sampling{MaxTokens: ptr[int32](1000), Seed: ptr[int64](11), Thinking: ptr(true), Temperature: ptr(0.0)}
		g := generate(t, c, "the colours of light", think)
		plain := generate(t, c, "the colours of light", &inferencev1.Sampling{MaxTokens: ptr[int32](1000), Seed: ptr[int64](11)})
		u := g.finished.GetUsage()
		if g.thought() == "" || u.GetReasoningTokens() == 0 || u.GetCompletionTokens() != u.GetReasoningTokens()+plain.finished.GetUsage().GetCompletionTokens() {
			t.Fatalf("thinking: %d reasoning of %d completion tokens (%q); want a chain of thought, counted in the completion", u.GetReasoningTokens(), u.GetCompletionTokens(), g.thought())
		}
		// The answer is the one without thinking (temperature is ignored
		// while thinking, as DeepSeek does).
		if g.text() != plain.text() {
			t.Fatalf("answer with thinking %q; without %q", g.text(), plain.text())
		}
		low := generate(t, c, "the colours of light", &inferencev1.Sampling{MaxTokens: ptr[int32](400), Seed: ptr[int64](11), Thinking: ptr(true),
			ReasoningEffort: inferencev1.ReasoningEffort_REASONING_EFFORT_LOW})
		if low.finished.GetUsage().GetReasoningTokens() >= u.GetReasoningTokens() {
			t.Fatalf("low effort thought %d tokens, high %d", low.finished.GetUsage().GetReasoningTokens(), u.GetReasoningTokens())
		}
		// max_tokens bounds the chain of thought and the answer together.
		short := generate(t, c, "the colours of light", &inferencev1.Sampling{MaxTokens: ptr[int32](10), Seed: ptr[int64](11), Thinking: ptr(true)})
		if short.finished.GetFinishReason() != inferencev1.FinishReason_FINISH_REASON_LENGTH || short.finished.GetUsage().GetCompletionTokens() != 10 || short.text() != "" {
			t.Fatalf("max_tokens 10 while thinking: %v, %d tokens, answer %q", short.finished.GetFinishReason(), short.finished.GetUsage().GetCompletionTokens(), short.text())
		}
	})
	t.Run("continuation is exact", func(t *testing.T) {
		for _, thinking := range []bool{false, true} {
			s := &inferencev1.Sampling{MaxTokens: ptr[int32](120), Seed: ptr[int64](99), Thinking: ptr(thinking), Temperature: ptr(1.0), Stop: []string{"never there"}}
			full := generate(t, c, "reflexions of the Rays", s)
			// Cut after every few pieces of thought and answer, and in the
			// middle of a piece: the continuation emits exactly the rest.
			var cuts []*inferencev1.Continuation
			for i := 1; i < len(full.thoughts); i += 7 {
				cuts = append(cuts, &inferencev1.Continuation{ReasoningContent: strings.Join(full.thoughts[:i], "")})
			}
			for i := 1; i < len(full.pieces); i += 5 {
				cuts = append(cuts, &inferencev1.Continuation{ReasoningContent: full.thought(), Content: strings.Join(full.pieces[:i], "")})
			}
			mid := strings.Join(full.pieces[:3], "")
			cuts = append(cuts, &inferencev1.Continuation{ReasoningContent: full.thought(), Content: mid[:len(mid)-2]})
			for _, cut := range cuts {
				req := request("reflexions of the Rays", s)
				req.Continuation = cut
				g, err := generateRequest(t, c, req)
				if err != nil {
					t.Fatal(err)
				}
				if cut.ReasoningContent+g.thought() != full.thought() || cut.Content+g.text() != full.text() {
					t.Fatalf("thinking %v, continued after %q|%q: got %q|%q; want the rest of %q|%q", thinking, cut.ReasoningContent, cut.Content, g.thought(), g.text(), full.thought(), full.text())
				}
				if !proto.Equal(g.finished, full.finished) {
					t.Fatalf("continued usage %v; uninterrupted %v", g.finished, full.finished)
				}
			}
		}
		// With log-probabilities: the continuation reports the tokens
		// that end after what was sent, so that the client has each once.
		s := &inferencev1.Sampling{MaxTokens: ptr[int32](80), Seed: ptr[int64](5), Logprobs: true, TopLogprobs: 2}
		full := generate(t, c, "reflexions of the Rays", s)
		if len(full.logprobs) < 10 {
			t.Fatalf("%d log-probabilities for %q", len(full.logprobs), full.text())
		}
		for _, n := range []int{1, 7, len(full.text()) / 2, len(full.text()) - 1} {
			req := request("reflexions of the Rays", s)
			req.Continuation = &inferencev1.Continuation{Content: full.text()[:n]}
			g, err := generateRequest(t, c, req)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			end := 0
			for _, lp := range full.logprobs {
				if end += len(lp.GetToken()); end > n {
					want = append(want, lp.GetToken())
				}
			}
			var got []string
			for _, lp := range g.logprobs {
				got = append(got, lp.GetToken())
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("continued after %d bytes: tokens %q; want %q", n, got, want)
			}
		}
		// A prefix this generation would not produce is refused.
		req := request("reflexions of the Rays", &inferencev1.Sampling{MaxTokens: ptr[int32](60), Seed: ptr[int64](99)})
		req.Continuation = &inferencev1.Continuation{Content: "Not what the model says"}
		if _, err := generateRequest(t, c, req); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("diverging continuation: %v; want FailedPrecondition", err)
		}
	})
	t.Run("cancel stops the generation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		st, err := c.Generate(ctx, &inferencev1.GenerateRequest{Messages: []*inferencev1.Message{{Role: inferencev1.Role_ROLE_USER, Content: "x"}}, Sampling: &inferencev1.Sampling{MaxTokens: ptr[int32](100000)}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
		cancel()
		for {
			if _, err := st.Recv(); err != nil {
				break
			}
		}
	})
	t.Run("tools", func(t *testing.T) {
		// It cannot call one, and says so; tool_choice none asks for none.
		req := request("What is the weather?", &inferencev1.Sampling{MaxTokens: ptr[int32](8)})
		req.Tools = []*inferencev1.Tool{{Type: "function", Name: "get_weather"}}
		_, err := generateRequest(t, c, req)
		if _, v, _ := platform.Details(err); status.Code(err) != codes.InvalidArgument || v != "tools" {
			t.Fatalf("builtin with tools: %v (field %q)", err, v)
		}
		req.ToolChoice = &inferencev1.ToolChoice{Mode: inferencev1.ToolChoice_MODE_NONE}
		if g, err := generateRequest(t, c, req); err != nil || g.text() == "" {
			t.Fatalf("builtin with tool_choice none: %q, %v", g.text(), err)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		_, err := c.CountTokens(t.Context(), &inferencev1.CountTokensRequest{Engine: "nope"})
		if err == nil || !strings.Contains(err.Error(), `engine "nope" is not an engine`) {
			t.Fatalf("unknown engine: %v", err)
		}
	})
}
