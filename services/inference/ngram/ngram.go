// Package ngram is the builtin engine's language model: a word-level
// trigram model with backoff (trigram → bigram → unigram), trained when the
// engine starts from a public-domain corpus embedded in the binary. It is
// small and CPU-only, but real: it samples each next word from counts
// learnt from text, with temperature and nucleus (top_p) sampling, and the
// same seed gives the same output.
package ngram

import (
	"context"
	_ "embed"
	"math"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
)

//go:embed corpus/opticks.txt
var opticks string

// Corpus is the embedded training text.
func Corpus() string { return opticks }

// eos ends a generation: the model learnt it at paragraph ends.
const eos = "\x00"

var wordRE = regexp.MustCompile(`[A-Za-z]+(?:'[a-z]+)?|[0-9]+|[.,;:!?()]|\n\s*\n`)

type next struct {
	id    int32
	count uint32
}

// Model is a trained model. It is immutable and safe for concurrent use.
type Model struct {
	vocab   []string
	ids     map[string]int32
	tri     map[[2]int32][]next
	bi      map[int32][]next
	uni     []next
	starts  []int32 // words that begin sentences
	nTokens int
	// uniByID is each word's count (Loss).
	uniByID []uint32
}

// Train builds a model from text.
func Train(text string) *Model {
	return TrainWith(text)
}

// TrainWith builds a model from text and the counts of adapters added to
// its own: a fine-tuned model is its base corpus plus what fine-tuning
// learnt (adapter.go).
func TrainWith(text string, adapters ...*Counts) *Model {
	t := newTrainer()
	t.text(text)
	for _, a := range adapters {
		t.counts(a)
	}
	return t.model()
}

// trainer accumulates counts by word id.
type trainer struct {
	m        *Model
	tri      map[[2]int32]map[int32]uint32
	bi       map[int32]map[int32]uint32
	uni      map[int32]uint32
	startSet map[int32]bool
}

func newTrainer() *trainer {
	return &trainer{
		m:   &Model{ids: map[string]int32{}, tri: map[[2]int32][]next{}, bi: map[int32][]next{}},
		tri: map[[2]int32]map[int32]uint32{}, bi: map[int32]map[int32]uint32{}, uni: map[int32]uint32{}, startSet: map[int32]bool{},
	}
}

func (t *trainer) id(w string) int32 {
	m := t.m
	if i, ok := m.ids[w]; ok {
		return i
	}
	i := int32(len(m.vocab))
	m.vocab = append(m.vocab, w)
	m.ids[w] = i
	return i
}

// text counts the words of a text once.
func (t *trainer) text(text string) {
	seq := words(text)
	ids := make([]int32, len(seq))
	for i, w := range seq {
		ids[i] = t.id(w)
	}
	t.m.nTokens += len(ids)
	for i, w := range ids {
		t.uni[w]++
		if i >= 1 {
			t.bigram(ids[i-1], w, 1)
		}
		if i >= 2 {
			addN(t.tri, [2]int32{ids[i-2], ids[i-1]}, w, 1)
		}
	}
}

func (t *trainer) bigram(p, w int32, n uint32) {
	addN(t.bi, p, w, n)
	if pw := t.m.vocab[p]; (pw == "." || pw == eos) && t.m.vocab[w] != eos && isWord(t.m.vocab[w]) {
		t.startSet[w] = true
	}
}

// counts adds an adapter's counts.
func (t *trainer) counts(c *Counts) {
	for w, n := range c.Uni {
		t.uni[t.id(w)] += n
		t.m.nTokens += int(n)
	}
	for k, n := range c.Bi {
		t.bigram(t.id(k[0]), t.id(k[1]), n)
	}
	for k, n := range c.Tri {
		addN(t.tri, [2]int32{t.id(k[0]), t.id(k[1])}, t.id(k[2]), n)
	}
}

func (t *trainer) model() *Model {
	m := t.m
	for k, v := range t.tri {
		m.tri[k] = sorted(v)
	}
	for k, v := range t.bi {
		m.bi[k] = sorted(v)
	}
	m.uni = sorted(t.uni)
	m.uniByID = make([]uint32, len(m.vocab))
	for id, n := range t.uni {
		m.uniByID[id] = n
	}
	for w := range t.startSet {
		m.starts = append(m.starts, w)
	}
	sort.Slice(m.starts, func(i, j int) bool { return m.starts[i] < m.starts[j] })
	return m
}

// words is the model's tokenisation of text: words, numbers and
// punctuation, with eos at each paragraph's end.
func words(text string) []string {
	var seq []string
	for _, w := range wordRE.FindAllString(strings.ReplaceAll(text, "_", ""), -1) {
		if strings.TrimSpace(w) == "" {
			if len(seq) > 0 && seq[len(seq)-1] != eos {
				seq = append(seq, eos)
			}
			continue
		}
		seq = append(seq, w)
	}
	return seq
}

func addN[K comparable](m map[K]map[int32]uint32, k K, w int32, n uint32) {
	c, ok := m[k]
	if !ok {
		c = map[int32]uint32{}
		m[k] = c
	}
	c[w] += n
}

// sorted orders candidates by count, then by id, so sampling is
// reproducible.
func sorted(c map[int32]uint32) []next {
	out := make([]next, 0, len(c))
	for id, n := range c {
		out = append(out, next{id, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].count != out[j].count {
			return out[i].count > out[j].count
		}
		return out[i].id < out[j].id
	})
	return out
}

func isWord(w string) bool {
	return w != "" && (w[0] >= 'A' && w[0] <= 'Z' || w[0] >= 'a' && w[0] <= 'z')
}

// Stats describes the model.
func (m *Model) Stats() (vocabulary, trainingTokens, trigrams int) {
	return len(m.vocab), m.nTokens, len(m.tri)
}

// Sampling is how the next word is chosen.
type Sampling struct {
	// Temperature 0 is greedy; higher flattens the distribution (count^(1/T)).
	Temperature float64
	// TopP keeps the smallest set of candidates whose probability reaches it.
	TopP float64
	// Seed makes the output reproducible.
	Seed uint64
	// FrequencyPenalty and PresencePenalty (OpenAI's, in [-2, 2]) lower the
	// log-weight of a word by the penalty times the times it was generated,
	// and by the penalty once it was generated at all.
	FrequencyPenalty, PresencePenalty float64
}

// Generator produces words one at a time.
type Generator struct {
	m      *Model
	s      Sampling
	rng    *rand.Rand
	w1, w2 int32
	first  bool
	prev   string
	// pending is a chosen sentence start not yet returned.
	pending string
	// spaced: the text continued ends with a space, so the next piece
	// does not add one.
	spaced bool
	// seen counts the words generated, for the penalties.
	seen  map[int32]int
	count int
	// trace > 0 records each step's distribution (Step) with this many
	// alternatives; traced is false until Trace is called.
	trace  int
	traced bool
	step   Step
}

// Alt is a word the model could have put at a position, spelled as it
// would have been there, with its log-probability.
type Alt struct {
	Piece   string
	Logprob float64
}

// Step is what the model thought of the last piece Next returned: its
// log-probability, and the most likely pieces at its position (most
// likely first; the end of the text is not one). The probabilities are
// the model's own (its counts at the context it backed off to), before
// temperature, top_p and penalties reshape them for sampling, as vLLM
// and OpenAI report them.
type Step struct {
	Logprob float64
	Top     []Alt
}

// Trace makes Next record the model's distribution at each step, with the
// top most likely alternatives (0: only the chosen piece's).
func (g *Generator) Trace(top int) { g.traced, g.trace = true, top }

// Step is the distribution at the last piece Next returned (zero unless
// Trace was called).
func (g *Generator) Step() Step { return g.step }

// record keeps the step of word id drawn from cands (nil: a sentence
// start, drawn uniformly), before id is spelled.
func (g *Generator) record(cands []next, id int32) {
	if !g.traced {
		return
	}
	st := Step{}
	if cands == nil {
		n := float64(len(g.m.starts))
		st.Logprob = -math.Log(n)
		for _, w := range g.m.starts[:min(g.trace, len(g.m.starts))] {
			st.Top = append(st.Top, Alt{Piece: g.spell(g.m.vocab[w]), Logprob: -math.Log(n)})
		}
		g.step = st
		return
	}
	var total float64
	for _, c := range cands {
		total += float64(c.count)
	}
	for _, c := range cands {
		if c.id == id {
			st.Logprob = math.Log(float64(c.count) / total)
		}
		if len(st.Top) < g.trace && g.m.vocab[c.id] != eos {
			st.Top = append(st.Top, Alt{Piece: g.spell(g.m.vocab[c.id]), Logprob: math.Log(float64(c.count) / total)})
		}
	}
	g.step = st
}

// MinWords is the shortest generation: the model may not end before.
const MinWords = 12

// Start begins a continuation of prompt: the context is the last two words
// of the prompt the model knows, else a sentence start.
func (m *Model) Start(prompt string, s Sampling) *Generator {
	g := &Generator{m: m, s: s, rng: rand.New(rand.NewPCG(s.Seed, s.Seed^0x9e3779b97f4a7c15)), w1: -1, w2: -1, first: true}
	for _, w := range wordRE.FindAllString(prompt, -1) {
		if id, ok := m.ids[w]; ok {
			g.w1, g.w2 = g.w2, id
		} else if id, ok := m.ids[strings.ToLower(w)]; ok {
			g.w1, g.w2 = g.w2, id
		}
	}
	if g.w2 < 0 {
		g.w2 = m.starts[g.rng.IntN(len(m.starts))]
		g.w1 = -1
		g.pending = m.vocab[g.w2]
	}
	return g
}

// Continue begins a generation that carries on text itself (a prefix the
// reply must continue): the first piece is spaced and cased as the next
// word of text, not as the start of a reply.
func (m *Model) Continue(text string, s Sampling) *Generator {
	g := m.Start(text, s)
	if g.pending != "" {
		// No word of text is known: open a sentence after it.
		g.prev = "."
	} else if words := wordRE.FindAllString(text, -1); len(words) > 0 {
		g.prev = words[len(words)-1]
	}
	g.first = strings.TrimSpace(text) == ""
	g.spaced = text != "" && strings.TrimRight(text, " \t\n") != text
	return g
}

// FirstWord is the first word of text the model knows ("" if none).
func (m *Model) FirstWord(text string) string {
	for _, w := range wordRE.FindAllString(text, -1) {
		if _, ok := m.ids[w]; ok {
			return w
		}
		if _, ok := m.ids[strings.ToLower(w)]; ok {
			return strings.ToLower(w)
		}
	}
	return ""
}

// Leads says whether the model has seen word follow the last word
// generated: where a fill-in-the-middle can join the text after it.
func (g *Generator) Leads(word string) bool {
	id, ok := g.m.ids[word]
	if !ok || g.w2 < 0 {
		return false
	}
	for _, n := range g.m.bi[g.w2] {
		if n.id == id {
			return true
		}
	}
	return false
}

// Next returns the next piece of text (a word with its leading space, or
// punctuation) and false at the end of the generation.
func (g *Generator) Next(ctx context.Context) (string, bool) {
	if ctx.Err() != nil {
		return "", false
	}
	if g.pending != "" {
		w := g.pending
		g.pending = ""
		g.count++
		g.record(nil, g.m.ids[w])
		return g.piece(w), true
	}
	var cands []next
	if g.w1 >= 0 {
		cands = g.m.tri[[2]int32{g.w1, g.w2}]
	}
	if len(cands) == 0 {
		cands = g.m.bi[g.w2]
	}
	if len(cands) == 0 {
		cands = g.m.uni
	}
	id := g.pick(cands)
	if g.m.vocab[id] == eos && g.count < MinWords {
		// Too early to end (a prompt ending a paragraph): open a sentence.
		id = g.m.starts[g.rng.IntN(len(g.m.starts))]
		g.prev = "."
		cands = nil
	}
	g.w1, g.w2 = g.w2, id
	w := g.m.vocab[id]
	if w == eos {
		return "", false
	}
	g.count++
	g.record(cands, id)
	return g.piece(w), true
}

// piece spells w where it comes and moves on past it.
func (g *Generator) piece(w string) string {
	s := g.spell(w)
	g.spaced, g.prev, g.first = false, w, false
	return s
}

// spell is w as the next piece: spaced and cased after what came before.
func (g *Generator) spell(w string) string {
	s := " " + w
	switch {
	case g.first:
		s = capitalise(w)
	case strings.ContainsAny(w, ".,;:!?)") && len(w) == 1:
		s = w
	case g.prev == "(":
		s = w
	case g.prev == "." || g.prev == "!" || g.prev == "?":
		s = " " + capitalise(w)
	}
	if g.spaced {
		s = strings.TrimPrefix(s, " ")
	}
	return s
}

func capitalise(w string) string {
	if w == "" || w[0] < 'a' || w[0] > 'z' {
		return w
	}
	return string(w[0]-'a'+'A') + w[1:]
}

func (g *Generator) pick(c []next) int32 {
	id := g.choose(c)
	if g.s.FrequencyPenalty != 0 || g.s.PresencePenalty != 0 {
		if g.seen == nil {
			g.seen = map[int32]int{}
		}
		g.seen[id]++
	}
	return id
}

// penalised reorders candidates by their penalised log-weight
// (log count − frequency × times seen − presence × seen at all), and
// returns their weights at temperature T (exp(logweight / T)).
func (g *Generator) penalised(c []next, temperature float64) ([]next, []float64) {
	type cand struct {
		n next
		l float64
	}
	cs := make([]cand, len(c))
	for i, n := range c {
		l := math.Log(float64(n.count))
		if k := g.seen[n.id]; k > 0 {
			l -= g.s.FrequencyPenalty*float64(k) + g.s.PresencePenalty
		}
		cs[i] = cand{n, l}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].l > cs[j].l })
	out, w := make([]next, len(c)), make([]float64, len(c))
	for i, x := range cs {
		out[i] = x.n
		if temperature > 0 {
			w[i] = math.Exp((x.l - cs[0].l) / temperature)
		}
	}
	return out, w
}

func (g *Generator) choose(c []next) int32 {
	// Weights count^(1/T), or penalised once words were generated under a
	// penalty; then normalised and truncated to the nucleus.
	var w []float64
	if g.seen != nil {
		c, w = g.penalised(c, g.s.Temperature)
	}
	if g.s.Temperature <= 0 || len(c) == 1 {
		return c[0].id
	}
	if w == nil {
		w = make([]float64, len(c))
		inv := 1 / g.s.Temperature
		for i, n := range c {
			w[i] = math.Pow(float64(n.count), inv)
		}
	}
	var sum float64
	for _, x := range w {
		sum += x
	}
	k := len(c)
	if p := g.s.TopP; p > 0 && p < 1 {
		// c is sorted by count, so by weight too.
		var cum float64
		for i := range w {
			cum += w[i] / sum
			if cum >= p {
				k = i + 1
				break
			}
		}
		sum = 0
		for i := 0; i < k; i++ {
			sum += w[i]
		}
	}
	r := g.rng.Float64() * sum
	for i := 0; i < k; i++ {
		r -= w[i]
		if r < 0 {
			return c[i].id
		}
	}
	return c[k-1].id
}
