package inference

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-mesh/bulkhead/services/inference/ngram"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

// DefaultMaxTokens applies when a request does not say (the chat service
// always does, from the model's registry entry).
const DefaultMaxTokens = 256

// ReasoningWords bounds the builtin model's chain of thought, by effort.
var ReasoningWords = map[inferencev1.ReasoningEffort]int{
	inferencev1.ReasoningEffort_REASONING_EFFORT_LOW:  32,
	inferencev1.ReasoningEffort_REASONING_EFFORT_HIGH: 96,
	inferencev1.ReasoningEffort_REASONING_EFFORT_MAX:  256,
}

// minFillWords is the shortest fill-in-the-middle.
const minFillWords = 4

// reasoningSalt derives the chain of thought's random stream from the
// request's seed, so that the answer is the same with thinking on or off.
const reasoningSalt = 0x7468696e6b696e67 // "thinking"

// Builtin is the engine of the model shipped in the repo.
type Builtin struct {
	model *ngram.Model
	// TokenInterval is slept before each piece: the decode time of a real
	// model, so that streaming can be seen and exercised (0: none). A
	// continuation replays what was already sent without it.
	TokenInterval time.Duration
	// adapters loads fine-tuned models (nil: only the base is served).
	adapters *adapters
}

// weights is the model an engine_model names: a fine-tuned one, or the
// base.
func (b *Builtin) weights(ctx context.Context, name string) (*ngram.Model, error) {
	if !fineTuned(name) {
		return b.model, nil
	}
	if b.adapters == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "model %s is fine-tuned, and this inference replica does not reach the training service", name)
	}
	return b.adapters.model(ctx, name)
}

// NewBuiltin trains the model on the embedded corpus.
func NewBuiltin(tokenInterval time.Duration) *Builtin {
	return &Builtin{model: ngram.Train(ngram.Corpus()), TokenInterval: tokenInterval}
}

// Generate implements Engine. The model is deterministic for a seed, so a
// continuation is exact: the generation is run again from the start and
// the part already sent is checked and skipped.
func (b *Builtin) Generate(ctx context.Context, req Request, emit func(Piece) error) (Result, error) {
	if req.callsTools() {
		// A trigram model cannot choose a function or write its arguments.
		return Result{}, platform.InvalidField("tools", "the builtin engine cannot call tools (tool_choice \"none\" is accepted); serve the model from an upstream that can (engine openai)")
	}
	model, err := b.weights(ctx, req.Model)
	if err != nil {
		return Result{}, err
	}
	s := req.Sampling
	res := Result{PromptTokens: req.PromptTokens}
	maxTokens := int(s.GetMaxTokens())
	if maxTokens <= 0 {
		maxTokens = DefaultMaxTokens
	}
	samp := ngram.Sampling{Temperature: 1, TopP: 1, Seed: rand.Uint64()}
	thinking := s.GetThinking()
	if !thinking {
		// Thinking mode ignores temperature and top_p, as DeepSeek's does.
		if s.Temperature != nil {
			samp.Temperature = s.GetTemperature()
		}
		if s.TopP != nil {
			samp.TopP = s.GetTopP()
		}
		samp.FrequencyPenalty, samp.PresencePenalty = s.GetFrequencyPenalty(), s.GetPresencePenalty()
	}
	if s.Seed != nil {
		samp.Seed = uint64(s.GetSeed())
	}
	rep := &replay{emit: emit, reasoning: req.Continuation.GetReasoningContent(), content: req.Continuation.GetContent(), sent: len(req.Continuation.GetContent())}
	budget := &budget{max: maxTokens}
	last := ""
	if n := len(req.Messages); n > 0 {
		last = req.Messages[n-1].GetContent()
	}

	var thought *limiter
	if thinking {
		thought = &limiter{emit: rep.reason, budget: budget}
		rs := samp
		rs.Seed ^= reasoningSalt
		words := ReasoningWords[s.GetReasoningEffort()]
		if words == 0 {
			words = ReasoningWords[inferencev1.ReasoningEffort_REASONING_EFFORT_HIGH]
		}
		// The chain of thought runs its full length: where the model ends
		// a paragraph, it thinks on in the next.
		paragraph := 0
		next := func() *ngram.Generator {
			paragraph++
			ps := rs
			ps.Seed += uint64(paragraph)
			return model.Start(last, ps)
		}
		finish, err := b.run(ctx, rep, thought, model.Start(last, rs), words, next, "", false)
		res.ReasoningTokens = thought.tokens()
		if err != nil || finish == inferencev1.FinishReason_FINISH_REASON_LENGTH {
			res.CompletionTokens = res.ReasoningTokens
			res.Finish = finish
			return res, rep.check(err)
		}
	}

	jsonMode := s.GetResponseFormat() == inferencev1.ResponseFormat_RESPONSE_FORMAT_JSON_OBJECT
	out := &limiter{emit: rep.answer, budget: budget, stops: s.GetStop(), top: -1}
	if s.GetLogprobs() {
		out.top = int(s.GetTopLogprobs())
	}
	count := func() {
		res.CompletionTokens = res.ReasoningTokens + out.tokens()
	}
	if jsonMode {
		// The reply is one JSON object; its closing is always sent, so it is
		// budgeted up front.
		if budget.max-budget.used < 4 {
			return res, platform.InvalidField("max_tokens", "too small for a JSON object: %d tokens left for the answer, at least 4 needed", budget.max-budget.used)
		}
		budget.max -= 2
		if err := out.raw(`{"content": "`); err != nil {
			count()
			return res, rep.check(err)
		}
	}
	gen := model.Start(last, samp)
	join := ""
	switch n := len(req.Messages); {
	case req.Suffix != nil:
		// Fill in the middle: carry on the prompt, and end where the model
		// can join the suffix's first word.
		gen = model.Continue(last, samp)
		join = model.FirstWord(*req.Suffix)
	case n > 0 && req.Messages[n-1].GetPrefix():
		// Chat prefix completion: the answer carries on the assistant's text.
		gen = model.Continue(last, samp)
	}
	if out.top >= 0 {
		gen.Trace(out.top)
	}
	finish, err := b.run(ctx, rep, out, gen, 0, nil, join, jsonMode)
	if err != nil {
		count()
		return res, rep.check(err)
	}
	if jsonMode {
		budget.max += 2
		if err := out.raw(`"}`); err != nil {
			count()
			return res, rep.check(err)
		}
	}
	count()
	res.Finish = finish
	return res, rep.check(nil)
}

// run writes gen's pieces to out until the generation ends, the budget
// or a stop sequence cuts it, or after maxWords words (0: no bound). When
// the generation ends first and more is set, it goes on with a paragraph
// break and the generator more returns. With join set, it ends (after a
// few words) where the model has seen join follow the last word.
func (b *Builtin) run(ctx context.Context, rep *replay, out *limiter, gen *ngram.Generator, maxWords int, more func() *ngram.Generator, join string, jsonMode bool) (inferencev1.FinishReason, error) {
	for words := 0; maxWords == 0 || words < maxWords; words++ {
		if b.TokenInterval > 0 && !rep.pending() {
			t := time.NewTimer(b.TokenInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return 0, ctx.Err()
			case <-t.C:
			}
		}
		piece, ok := gen.Next(ctx)
		if !ok && more != nil && ctx.Err() == nil {
			gen = more()
			if piece, ok = gen.Next(ctx); ok {
				piece = "\n\n" + piece
			}
		}
		if !ok {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			break
		}
		if jsonMode {
			piece = jsonEscape(piece)
		}
		var lp *inferencev1.Logprob
		if out.top >= 0 {
			lp = logprob(piece, gen.Step(), jsonMode)
		}
		done, reason, err := out.write(piece, lp)
		if err != nil {
			return 0, err
		}
		if done {
			return reason, nil
		}
		if join != "" && words >= minFillWords && gen.Leads(join) {
			break
		}
	}
	return inferencev1.FinishReason_FINISH_REASON_STOP, out.flush()
}

// jsonEscape is s inside a JSON string.
func jsonEscape(s string) string {
	q, _ := json.Marshal(s)
	return string(q[1 : len(q)-1])
}

// logprob is the entry of piece, from the model's step.
func logprob(piece string, st ngram.Step, jsonMode bool) *inferencev1.Logprob {
	lp := &inferencev1.Logprob{Token: piece, Logprob: st.Logprob, Bytes: []byte(piece)}
	for _, alt := range st.Top {
		tok := alt.Piece
		if jsonMode {
			tok = jsonEscape(tok)
		}
		lp.TopLogprobs = append(lp.TopLogprobs, &inferencev1.Logprob{Token: tok, Logprob: alt.Logprob, Bytes: []byte(tok)})
	}
	return lp
}

// forced is the entry of text the engine writes whatever the model says
// (a JSON object's framing): probability 1.
func forced(text string, top int) *inferencev1.Logprob {
	lp := &inferencev1.Logprob{Token: text, Bytes: []byte(text)}
	if top > 0 {
		lp.TopLogprobs = []*inferencev1.Logprob{{Token: text, Bytes: []byte(text)}}
	}
	return lp
}

// tokenAt is a token's log-probability and the byte offset in the answer
// where the token ends: it goes out with the text that reaches there.
type tokenAt struct {
	end int
	lp  *inferencev1.Logprob
}

func logprobsOf(ts []tokenAt) []*inferencev1.Logprob {
	var out []*inferencev1.Logprob
	for _, t := range ts {
		out = append(out, t.lp)
	}
	return out
}

// errDiverged is a continuation that is not what this engine generates
// for the request: another model, version or seed produced it.
var errDiverged = status.Error(codes.FailedPrecondition, "continuation: the text already sent is not this model's generation for this request and seed; it cannot be continued exactly")

// replay passes the pieces of a generation on, skipping (and checking)
// the part of it a continuation says was already sent.
type replay struct {
	emit               func(Piece) error
	reasoning, content string
	// sent is how much of the answer the continuation holds: the tokens
	// that end within it were sent with it.
	sent int
}

func (r *replay) pending() bool { return r.reasoning != "" || r.content != "" }

func (r *replay) reason(s string, _ []tokenAt) error {
	rest, err := r.skip(&r.reasoning, s)
	if err != nil || rest == "" {
		return err
	}
	return r.emit(Piece{Reasoning: rest})
}

func (r *replay) answer(s string, lps []tokenAt) error {
	if r.reasoning != "" {
		// The answer began where the sent text still had thought.
		return errDiverged
	}
	rest, err := r.skip(&r.content, s)
	if err != nil || rest == "" {
		return err
	}
	for len(lps) > 0 && lps[0].end <= r.sent {
		lps = lps[1:]
	}
	return r.emit(Piece{Content: rest, Logprobs: logprobsOf(lps)})
}

func (r *replay) skip(want *string, got string) (string, error) {
	switch {
	case *want == "":
		return got, nil
	case strings.HasPrefix(*want, got):
		*want = (*want)[len(got):]
		return "", nil
	case strings.HasPrefix(got, *want):
		rest := got[len(*want):]
		*want = ""
		return rest, nil
	}
	return "", errDiverged
}

// check turns the end of a generation into the continuation's verdict: a
// generation shorter than what was already sent cannot continue it.
func (r *replay) check(err error) error {
	if err == nil && r.pending() {
		return errDiverged
	}
	return err
}

// budget is max_tokens, shared by the chain of thought and the answer.
type budget struct{ max, used int }

// limiter enforces the budget and stop sequences on the stream: it holds
// back the tail that could be the start of a stop sequence, and cuts the
// last piece at the token budget.
//
// With logprobs (top >= 0, the alternatives wanted) it also passes each
// piece's entry on with the text that completes it; a piece cut by the
// budget or a stop sequence is reported as far as it was sent.
type limiter struct {
	emit   func(string, []tokenAt) error
	budget *budget
	stops  []string
	held   string
	text   strings.Builder

	top           int
	queue         []tokenAt
	written, sent int
}

func (l *limiter) raw(s string) error {
	l.budget.used += tokens.Count(s)
	l.text.WriteString(s)
	l.written += len(s)
	l.sent += len(s)
	var lps []tokenAt
	if l.top >= 0 {
		lps = []tokenAt{{end: l.sent, lp: forced(s, l.top)}}
	}
	return l.emit(s, lps)
}

func (l *limiter) write(piece string, lp *inferencev1.Logprob) (bool, inferencev1.FinishReason, error) {
	b := l.budget
	n := tokens.Count(piece)
	cut := false
	if b.used+n > b.max {
		ids := tokens.Encode(piece)
		piece = tokens.Decode(ids[:max(0, b.max-b.used)])
		n, cut = b.max-b.used, true
	}
	b.used += n
	l.written += len(piece)
	if lp != nil && piece != "" {
		lp.Token, lp.Bytes = piece, []byte(piece)
		l.queue = append(l.queue, tokenAt{end: l.written, lp: lp})
	}
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

// flush sends what is held back. A stop sequence may have cut the held
// text: the piece it cut is reported as far as it was sent, the pieces
// after are not.
func (l *limiter) flush() error {
	s := l.held
	l.held = ""
	end := l.sent + len(s)
	for i, t := range l.queue {
		if start := t.end - len(t.lp.Token); start >= end {
			l.queue = l.queue[:i]
			break
		} else if t.end > end {
			t.lp.Token = t.lp.Token[:end-start]
			t.lp.Bytes = []byte(t.lp.Token)
			l.queue[i].end = end
		}
	}
	return l.send(s)
}

func (l *limiter) send(s string) error {
	if s == "" {
		return nil
	}
	l.text.WriteString(s)
	l.sent += len(s)
	n := 0
	for n < len(l.queue) && l.queue[n].end <= l.sent {
		n++
	}
	done := l.queue[:n:n]
	l.queue = l.queue[n:]
	return l.emit(s, done)
}

// tokens counts what was sent, with the real tokenizer.
func (l *limiter) tokens() int64 { return int64(tokens.Count(l.text.String())) }
