package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	chatv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/chat/v1"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
)

// The body of POST /beta/completions: DeepSeek's FIM (fill in the middle),
// the OpenAI text-completion shape with a suffix.
type textRequest struct {
	Model  string          `json:"model"`
	Prompt json.RawMessage `json:"prompt"`
	Suffix *string         `json:"suffix"`
	generation
	Echo     bool `json:"echo"`
	Logprobs *int `json:"logprobs"`
	BestOf   *int `json:"best_of"`
}

// toFill validates a text completion and builds the chat call: one user
// message holding the raw prompt, and the suffix (empty when none, which
// makes it a plain text completion).
func toFill(body *textRequest, requestID string) (*chatv1.CompleteRequest, *apierr.Error) {
	if body.Model == "" {
		return nil, apierr.InvalidParam("model", "model: is required")
	}
	var prompt string
	if err := json.Unmarshal(body.Prompt, &prompt); err != nil {
		var many []string
		if json.Unmarshal(body.Prompt, &many) != nil || len(many) != 1 {
			return nil, apierr.InvalidParam("prompt", "prompt: must be a string (or an array of one string)")
		}
		prompt = many[0]
	}
	if prompt == "" {
		return nil, apierr.InvalidParam("prompt", "prompt: is required")
	}
	switch {
	case body.Logprobs != nil && (*body.Logprobs < 0 || *body.Logprobs > 20):
		return nil, apierr.InvalidParam("logprobs", "logprobs: must be an integer in [0, 20] (the alternatives per token)")
	case body.BestOf != nil && *body.BestOf != 1:
		return nil, apierr.InvalidParam("best_of", "best_of: only 1 is supported")
	}
	// The generation fields (n and stream_options too) read, and are
	// checked, exactly as a chat completion's.
	chat := &chatRequest{Model: body.Model, generation: body.generation, Messages: []wireMessage{{Role: "user"}}}
	chat.Messages[0].Content, _ = json.Marshal(prompt)
	if k := body.Logprobs; k != nil {
		// The text completion's logprobs is the chat's top_logprobs.
		chat.Logprobs, chat.TopLogprobs = proto.Bool(true), k
	}
	req, aerr := toComplete(chat, requestID)
	if aerr != nil {
		return nil, aerr
	}
	req.Suffix = proto.String("")
	if body.Suffix != nil {
		req.Suffix = body.Suffix
	}
	return req, nil
}

type textChoice struct {
	Text         string        `json:"text"`
	Index        int           `json:"index"`
	Logprobs     *textLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

// textLogprobs is the text completion's logprobs object: per token, its
// text, log-probability, the most likely tokens there and its byte offset
// in the choice's text.
type textLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// textLogprobsOf renders lps, the first token at offset; it returns the
// offset after the last.
func textLogprobsOf(lps []*inferencev1.Logprob, offset int) (*textLogprobs, int) {
	out := &textLogprobs{Tokens: []string{}, TokenLogprobs: []float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	for _, lp := range lps {
		top := map[string]float64{}
		for _, t := range lp.GetTopLogprobs() {
			top[t.GetToken()] = t.GetLogprob()
		}
		out.Tokens = append(out.Tokens, lp.GetToken())
		out.TokenLogprobs = append(out.TokenLogprobs, lp.GetLogprob())
		out.TopLogprobs = append(out.TopLogprobs, top)
		out.TextOffset = append(out.TextOffset, offset)
		offset += len(lp.GetToken())
	}
	return out, offset
}

type textCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint"`
	Choices           []textChoice `json:"choices"`
	Usage             *chatUsage   `json:"usage,omitempty"`
}

// textChunks is the streamed text_completion shape; with echo the first
// chunk is the prompt.
type textChunks struct {
	base textCompletion
	echo string
	// offset is where the next token starts in the choice's text (for
	// logprobs).
	offset *int
}

func (c textChunks) served(model string) chunkShape {
	c.base.Model = model
	return c
}

func (c textChunks) first() any {
	if c.echo == "" {
		return nil
	}
	return c.with(c.echo, nil)
}

func (c textChunks) with(text string, finish *string) textCompletion {
	out := c.base
	out.Choices = []textChoice{{Text: text, FinishReason: finish}}
	return out
}

func (c textChunks) delta(d *chatv1.CompleteResponse_Delta) any {
	if d.GetContent() == "" {
		return nil
	}
	out := c.with(d.GetContent(), nil)
	if lps := d.GetLogprobs(); len(lps) > 0 {
		out.Choices[0].Logprobs, *c.offset = textLogprobsOf(lps, *c.offset)
	}
	return out
}

func (c textChunks) finish(reason string) any { return c.with("", &reason) }

func (c textChunks) usage(u *chatv1.Usage) any {
	out := c.base
	out.Choices = []textChoice{}
	out.Usage = wireUsage(u)
	return out
}

// textCompletions serves POST /beta/completions (and /v1/completions):
// the text between prompt and suffix, as DeepSeek's FIM answers it.
func (s *server) textCompletions(w http.ResponseWriter, r *http.Request, c caller) {
	var body textRequest
	if aerr := decode(w, r, s.o.MaxBodyBytes, &body); aerr != nil {
		aerr.Write(w)
		return
	}
	req, aerr := toFill(&body, platform.RequestID(r.Context()))
	if aerr != nil {
		aerr.Write(w)
		return
	}
	stream, started, ok := s.complete(w, r, c, req)
	if !ok {
		return
	}
	echo := ""
	if body.Echo {
		echo = req.GetMessages()[0].GetContent()
	}
	base := textCompletion{ID: strings.Replace(started.GetId(), "chatcmpl-", "cmpl-", 1), Object: "text_completion", Created: started.GetCreated(),
		Model: started.GetModel(), SystemFingerprint: started.GetSystemFingerprint()}
	if body.Stream {
		offset := len(echo)
		s.writeStream(w, r, stream, textChunks{base: base, echo: echo, offset: &offset}, body.StreamOptions != nil && body.StreamOptions.IncludeUsage)
		return
	}
	rep, ok := collect(w, stream)
	if !ok {
		return
	}
	base.Usage = rep.usage
	if rep.model != "" {
		base.Model = rep.model
	}
	base.Choices = []textChoice{{Text: echo + rep.content.String(), FinishReason: rep.finish}}
	if body.Logprobs != nil {
		base.Choices[0].Logprobs, _ = textLogprobsOf(rep.logprobs, len(echo))
	}
	writeJSON(w, http.StatusOK, base)
}
