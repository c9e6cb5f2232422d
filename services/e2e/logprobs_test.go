package e2e_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/internal/upstreamtest"
	"github.com/bulkhead-mesh/bulkhead/services/models"
)

// checkLogprobs holds a reply's log-probabilities to OpenAI's contract:
// their tokens spell the content, bytes are the token's, every
// probability is one, and a position's alternatives are at most k, most
// likely first. It returns how many positions chose their most likely
// token.
func checkLogprobs(t *testing.T, content string, lps []openai.ChatCompletionTokenLogprob, k int) int {
	t.Helper()
	var spelt strings.Builder
	top1 := 0
	for i, lp := range lps {
		spelt.WriteString(lp.Token)
		if lp.Logprob > 0 || math.IsNaN(lp.Logprob) || string(bytesOf(lp.Bytes)) != lp.Token {
			t.Fatalf("logprobs[%d] %+v: not a probability, or bytes not the token's", i, lp)
		}
		if len(lp.TopLogprobs) > k {
			t.Fatalf("logprobs[%d]: %d alternatives, asked for %d", i, len(lp.TopLogprobs), k)
		}
		for j, alt := range lp.TopLogprobs {
			if alt.Logprob > 0 || j > 0 && alt.Logprob > lp.TopLogprobs[j-1].Logprob {
				t.Fatalf("logprobs[%d].top_logprobs %+v: not most likely first", i, lp.TopLogprobs)
			}
		}
		if k > 0 && len(lp.TopLogprobs) > 0 && lp.Logprob > lp.TopLogprobs[0].Logprob+1e-9 {
			t.Fatalf("logprobs[%d]: chosen %v more likely than the most likely %v", i, lp.Logprob, lp.TopLogprobs[0].Logprob)
		}
		if len(lp.TopLogprobs) > 0 && lp.TopLogprobs[0].Token == lp.Token {
			top1++
		}
	}
	if spelt.String() != content {
		t.Fatalf("the tokens spell %q; the content is %q", spelt.String(), content)
	}
	return top1
}

func bytesOf(b []int64) []byte {
	out := make([]byte, len(b))
	for i, x := range b {
		out[i] = byte(x)
	}
	return out
}

// logprobs and top_logprobs with the official Go SDK: the builtin engine
// reports its own model's probabilities (greedy at temperature 0 picks
// the most likely, streamed and whole alike, cut by stop sequences and
// max_tokens, framed by json_object); an upstream's are passed through;
// bad values are 422s naming the field.
func TestLogprobs(t *testing.T) {
	up := upstreamtest.New(t, "lp", 5)
	dir := t.TempDir()
	writeUpstreamModel(t, dir, "relayed", "", up)
	p := stack.StartPlatform(t, stack.PlatformOptions{Models: models.Options{ConfigDirs: []string{dir}}})
	ctx := t.Context()
	client := goSDK(p, "/v1/")
	params := openai.ChatCompletionNewParams{
		Model:       "deepseek-chat",
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me of the refraction of the Rays of Light")},
		MaxTokens:   openai.Int(40),
		Temperature: openai.Float(0),
		Logprobs:    openai.Bool(true),
		TopLogprobs: openai.Int(3),
	}

	t.Run("builtin, whole", func(t *testing.T) {
		res, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		ch := res.Choices[0]
		lps := ch.Logprobs.Content
		if len(lps) < 10 {
			t.Fatalf("%d log-probabilities for %q", len(lps), ch.Message.Content)
		}
		// Greedy: the chosen word is the model's most likely, but where
		// a sentence opens (drawn uniformly) or an early end is refused.
		if top1 := checkLogprobs(t, ch.Message.Content, lps, 3); top1 < len(lps)*3/4 {
			t.Fatalf("temperature 0 chose the most likely word at %d of %d positions", top1, len(lps))
		}
		// Streamed, the same numbers, each with the chunk that completes
		// its token.
		stream := client.Chat.Completions.NewStreaming(ctx, params)
		var content strings.Builder
		var streamed []openai.ChatCompletionTokenLogprob
		for stream.Next() {
			for _, c := range stream.Current().Choices {
				content.WriteString(c.Delta.Content)
				streamed = append(streamed, c.Logprobs.Content...)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if content.String() != ch.Message.Content || len(streamed) != len(lps) {
			t.Fatalf("streamed %q with %d log-probabilities; whole %q with %d", content.String(), len(streamed), ch.Message.Content, len(lps))
		}
		for i := range lps {
			if streamed[i].Token != lps[i].Token || streamed[i].Logprob != lps[i].Logprob {
				t.Fatalf("logprobs[%d]: streamed %+v, whole %+v", i, streamed[i], lps[i])
			}
		}
		// A reply with log-probabilities is computed, never replayed
		// from the response cache (it would say a cached reply's prompt
		// was a hit).
		if res.Usage.PromptTokensDetails.CachedTokens != 0 {
			t.Fatalf("a logprobs reply was answered from the cache: %+v", res.Usage)
		}
	})

	t.Run("builtin, cut by stop and max_tokens, and as JSON", func(t *testing.T) {
		full, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		words := strings.Fields(full.Choices[0].Message.Content)
		stop := params
		stop.Stop = openai.ChatCompletionNewParamsStopUnion{OfString: openai.String(words[4][:2])}
		short := params
		short.MaxTokens = openai.Int(7)
		obj := params
		obj.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &openai.ResponseFormatJSONObjectParam{}}
		for name, p := range map[string]openai.ChatCompletionNewParams{"stop": stop, "max_tokens": short, "json_object": obj} {
			res, err := client.Chat.Completions.New(ctx, p)
			if err != nil {
				t.Fatal(name, err)
			}
			checkLogprobs(t, res.Choices[0].Message.Content, res.Choices[0].Logprobs.Content, 3)
		}
	})

	t.Run("upstream, passed through", func(t *testing.T) {
		relayed := params
		relayed.Model = "relayed"
		var res *openai.ChatCompletion
		testenv.Eventually(t, 20*time.Second, "relayed served", func() error {
			var err error
			res, err = client.Chat.Completions.New(ctx, relayed)
			return err
		})
		lps := res.Choices[0].Logprobs.Content
		checkLogprobs(t, res.Choices[0].Message.Content, lps, 3)
		if len(lps) != 5 || lps[0].Logprob != -0.25 || len(lps[0].TopLogprobs) != 3 || lps[0].TopLogprobs[2].Token != " alt2" || lps[0].TopLogprobs[2].Logprob != -3 {
			t.Fatalf("the upstream's log-probabilities were not passed through: %+v", lps)
		}
		sent := up.LastBody(t)
		if sent["logprobs"] != true || sent["top_logprobs"] != float64(3) {
			t.Fatalf("the upstream was asked logprobs %v, top_logprobs %v", sent["logprobs"], sent["top_logprobs"])
		}
		// Its prompt-cache hits are billed as hits, as the same share of
		// the prompt as we count it.
		if res.Usage.PromptTokensDetails.CachedTokens != 0 {
			t.Fatalf("cache hits %d from an upstream that reported none", res.Usage.PromptTokensDetails.CachedTokens)
		}
		// Not asked, not sent, and the reply carries none.
		relayed.Logprobs, relayed.TopLogprobs = openai.Bool(false), openai.Int(0)
		res, err := client.Chat.Completions.New(ctx, relayed)
		if err != nil || len(res.Choices[0].Logprobs.Content) != 0 || res.Choices[0].Logprobs.JSON.Content.Valid() {
			t.Fatalf("logprobs false: %+v (%v)", res.Choices[0].Logprobs, err)
		}
		if _, set := up.LastBody(t)["logprobs"]; set {
			t.Fatal("logprobs sent to the upstream though the client did not ask")
		}
		up.CachedPrompt.Store(4)              // of 5
		relayed.Temperature = openai.Float(1) // not from the response cache
		res, err = client.Chat.Completions.New(ctx, relayed)
		if err != nil {
			t.Fatal(err)
		}
		if u := res.Usage; u.PromptTokensDetails.CachedTokens != u.PromptTokens*4/5 {
			t.Fatalf("usage %+v: the upstream's 4 of 5 prompt tokens cached are %d of our %d", u, u.PromptTokens*4/5, u.PromptTokens)
		}
	})

	t.Run("fill in the middle, the text completion's shape", func(t *testing.T) {
		beta := goSDK(p, "/beta/")
		res, err := beta.Completions.New(ctx, openai.CompletionNewParams{
			Model:       "deepseek-chat",
			Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("The Rays of Light")},
			Suffix:      openai.String(" of the Prism."),
			MaxTokens:   openai.Int(30),
			Temperature: openai.Float(0),
			Logprobs:    openai.Int(2),
			Echo:        openai.Bool(true),
		})
		if err != nil {
			t.Fatal(err)
		}
		ch := res.Choices[0]
		lp := ch.Logprobs
		if len(lp.Tokens) < 4 || len(lp.TokenLogprobs) != len(lp.Tokens) || len(lp.TopLogprobs) != len(lp.Tokens) || len(lp.TextOffset) != len(lp.Tokens) {
			t.Fatalf("logprobs %+v for %q", lp, ch.Text)
		}
		// Echoed, the prompt comes first: the first token's offset is
		// after it, and every token is where its offset says.
		if int(lp.TextOffset[0]) != len("The Rays of Light") || strings.Join(lp.Tokens, "") != strings.TrimPrefix(ch.Text, "The Rays of Light") {
			t.Fatalf("tokens %q at %v in %q", lp.Tokens, lp.TextOffset, ch.Text)
		}
		for i, tok := range lp.Tokens {
			if o := int(lp.TextOffset[i]); ch.Text[o:o+len(tok)] != tok || lp.TokenLogprobs[i] > 0 || len(lp.TopLogprobs[i]) > 2 {
				t.Fatalf("token %d %q at %d, logprob %v, alternatives %v", i, tok, o, lp.TokenLogprobs[i], lp.TopLogprobs[i])
			}
		}
	})

	t.Run("bad values", func(t *testing.T) {
		for _, c := range []struct {
			top      int64
			logprobs bool
		}{{21, true}, {-1, true}, {2, false}} {
			bad := params
			bad.Logprobs, bad.TopLogprobs = openai.Bool(c.logprobs), openai.Int(c.top)
			_, err := client.Chat.Completions.New(ctx, bad)
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 422 || apiErr.Param != "top_logprobs" {
				t.Errorf("top_logprobs %d, logprobs %v: %v", c.top, c.logprobs, err)
			}
		}
	})
}
