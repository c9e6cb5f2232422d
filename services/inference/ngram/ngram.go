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
}

// Train builds a model from text.
func Train(text string) *Model {
	m := &Model{ids: map[string]int32{}, tri: map[[2]int32][]next{}, bi: map[int32][]next{}}
	id := func(w string) int32 {
		if i, ok := m.ids[w]; ok {
			return i
		}
		i := int32(len(m.vocab))
		m.vocab = append(m.vocab, w)
		m.ids[w] = i
		return i
	}
	eosID := id(eos)
	var seq []int32
	for _, w := range wordRE.FindAllString(strings.ReplaceAll(text, "_", ""), -1) {
		if strings.TrimSpace(w) == "" {
			if len(seq) > 0 && seq[len(seq)-1] != eosID {
				seq = append(seq, eosID)
			}
			continue
		}
		seq = append(seq, id(w))
	}
	m.nTokens = len(seq)
	tri := map[[2]int32]map[int32]uint32{}
	bi := map[int32]map[int32]uint32{}
	uni := map[int32]uint32{}
	startSet := map[int32]bool{}
	for i, w := range seq {
		uni[w]++
		if i >= 1 {
			add(bi, seq[i-1], w)
			if p := m.vocab[seq[i-1]]; (p == "." || p == eos) && w != eosID && isWord(m.vocab[w]) {
				startSet[w] = true
			}
		}
		if i >= 2 {
			add(tri, [2]int32{seq[i-2], seq[i-1]}, w)
		}
	}
	for k, v := range tri {
		m.tri[k] = sorted(v)
	}
	for k, v := range bi {
		m.bi[k] = sorted(v)
	}
	m.uni = sorted(uni)
	for w := range startSet {
		m.starts = append(m.starts, w)
	}
	sort.Slice(m.starts, func(i, j int) bool { return m.starts[i] < m.starts[j] })
	return m
}

func add[K comparable](m map[K]map[int32]uint32, k K, w int32) {
	c, ok := m[k]
	if !ok {
		c = map[int32]uint32{}
		m[k] = c
	}
	c[w]++
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
	count   int
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
	}
	g.w1, g.w2 = g.w2, id
	w := g.m.vocab[id]
	if w == eos {
		return "", false
	}
	g.count++
	return g.piece(w), true
}

func (g *Generator) piece(w string) string {
	defer func() { g.prev = w; g.first = false }()
	if g.first {
		return capitalise(w)
	}
	switch {
	case strings.ContainsAny(w, ".,;:!?)") && len(w) == 1:
		return w
	case g.prev == "(":
		return w
	case g.prev == "." || g.prev == "!" || g.prev == "?":
		return " " + capitalise(w)
	}
	return " " + w
}

func capitalise(w string) string {
	if w == "" || w[0] < 'a' || w[0] > 'z' {
		return w
	}
	return string(w[0]-'a'+'A') + w[1:]
}

func (g *Generator) pick(c []next) int32 {
	if g.s.Temperature <= 0 || len(c) == 1 {
		return c[0].id
	}
	// Weights count^(1/T), normalised; then nucleus truncation.
	w := make([]float64, len(c))
	var sum float64
	inv := 1 / g.s.Temperature
	for i, n := range c {
		w[i] = math.Pow(float64(n.count), inv)
		sum += w[i]
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
