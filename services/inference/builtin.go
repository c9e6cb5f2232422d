package inference

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bulkhead-mesh/bulkhead/services/inference/ngram"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

// DefaultMaxTokens applies when a request does not say (the chat service
// always does, from the model's registry entry).
const DefaultMaxTokens = 256

// Builtin is the engine of the model shipped in the repo.
type Builtin struct {
	model *ngram.Model
	// TokenInterval is slept before each piece: the decode time of a real
	// model, so that streaming can be seen and exercised (0: none).
	TokenInterval time.Duration
}

// NewBuiltin trains the model on the embedded corpus.
func NewBuiltin(tokenInterval time.Duration) *Builtin {
	return &Builtin{model: ngram.Train(ngram.Corpus()), TokenInterval: tokenInterval}
}

// Generate implements Engine.
func (b *Builtin) Generate(ctx context.Context, req Request, emit func(string) error) (Result, error) {
	s := req.Sampling
	res := Result{PromptTokens: req.PromptTokens}
	maxTokens := int(s.GetMaxTokens())
	if maxTokens <= 0 {
		maxTokens = DefaultMaxTokens
	}
	samp := ngram.Sampling{Temperature: 1, TopP: 1, Seed: rand.Uint64()}
	if s.Temperature != nil {
		samp.Temperature = s.GetTemperature()
	}
	if s.TopP != nil {
		samp.TopP = s.GetTopP()
	}
	if s.Seed != nil {
		samp.Seed = uint64(s.GetSeed())
	}
	jsonMode := s.GetResponseFormat() == inferencev1.ResponseFormat_RESPONSE_FORMAT_JSON_OBJECT
	out := &limiter{emit: emit, max: maxTokens, stops: s.GetStop()}
	if jsonMode {
		// The reply is one JSON object; its closing is always sent, so it is
		// budgeted up front.
		out.max -= 2
		if err := out.raw(`{"content": "`); err != nil {
			return out.result(res), err
		}
	}
	last := ""
	if n := len(req.Messages); n > 0 {
		last = req.Messages[n-1].GetContent()
	}
	gen := b.model.Start(last, samp)
	finish := inferencev1.FinishReason_FINISH_REASON_STOP
	for {
		if b.TokenInterval > 0 {
			t := time.NewTimer(b.TokenInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return out.result(res), ctx.Err()
			case <-t.C:
			}
		}
		piece, ok := gen.Next(ctx)
		if !ok {
			if err := ctx.Err(); err != nil {
				return out.result(res), err
			}
			break
		}
		if jsonMode {
			q, _ := json.Marshal(piece)
			piece = string(q[1 : len(q)-1])
		}
		done, reason, err := out.write(piece)
		if err != nil {
			return out.result(res), err
		}
		if done {
			finish = reason
			break
		}
	}
	if err := out.flush(); err != nil {
		return out.result(res), err
	}
	if jsonMode {
		out.max += 2
		if err := out.raw(`"}`); err != nil {
			return out.result(res), err
		}
	}
	res = out.result(res)
	res.Finish = finish
	return res, nil
}

// limiter enforces max_tokens and stop sequences on the stream: it holds
// back the tail that could be the start of a stop sequence, and cuts the
// last piece at the token budget.
type limiter struct {
	emit  func(string) error
	max   int
	used  int
	stops []string
	held  string
	text  strings.Builder
}

func (l *limiter) raw(s string) error {
	l.used += tokens.Count(s)
	l.text.WriteString(s)
	return l.emit(s)
}

func (l *limiter) write(piece string) (bool, inferencev1.FinishReason, error) {
	n := tokens.Count(piece)
	cut := false
	if l.used+n > l.max {
		ids := tokens.Encode(piece)
		piece = tokens.Decode(ids[:max(0, l.max-l.used)])
		n, cut = l.max-l.used, true
	}
	l.used += n
	l.held += piece
	for _, stop := range l.stops {
		if i := strings.Index(l.held, stop); i >= 0 && stop != "" {
			l.held = l.held[:i]
			return true, inferencev1.FinishReason_FINISH_REASON_STOP, l.flush()
		}
	}
	if cut {
		return true, inferencev1.FinishReason_FINISH_REASON_LENGTH, l.flush()
	}
	keep := 0
	for _, stop := range l.stops {
		keep = max(keep, len(stop)-1)
	}
	if len(l.held) > keep {
		cutAt := len(l.held) - keep
		for cutAt > 0 && cutAt < len(l.held) && !utf8.RuneStart(l.held[cutAt]) {
			cutAt--
		}
		if err := l.send(l.held[:cutAt]); err != nil {
			return true, 0, err
		}
		l.held = l.held[cutAt:]
	}
	return false, 0, nil
}

func (l *limiter) flush() error {
	s := l.held
	l.held = ""
	return l.send(s)
}

func (l *limiter) send(s string) error {
	if s == "" {
		return nil
	}
	l.text.WriteString(s)
	return l.emit(s)
}

// result counts the completion tokens of what was sent, with the real
// tokenizer.
func (l *limiter) result(r Result) Result {
	r.CompletionTokens = int64(tokens.Count(l.text.String()))
	return r
}
