package ngram

import (
	"math"
	"strings"
)

// The weights of the interpolated estimate Loss scores with: trigram,
// bigram, and the add-one unigram that gives every word, known or not, a
// probability.
const (
	lambdaTri = 0.6
	lambdaBi  = 0.3
	lambdaUni = 0.1
)

// Loss is how surprised the model is by text following context: the sum
// of the negative natural log-probabilities of text's tokens (the end of
// the paragraph included), and their number. exp(loss / tokens) is the
// perplexity; lower is better. Unlike generation, which backs off, it
// interpolates trigram, bigram and add-one unigram estimates so that an
// unseen word costs a finite amount.
func (m *Model) Loss(context, text string) (loss float64, tokens int) {
	w1, w2 := int32(-1), int32(-1)
	for _, w := range words(context) {
		w1, w2 = w2, m.lookup(w)
	}
	seq := words(text)
	if len(seq) > 0 && seq[len(seq)-1] != eos {
		seq = append(seq, eos)
	}
	total := float64(m.nTokens)
	vocab := float64(len(m.vocab) + 1)
	for _, w := range seq {
		id := m.lookup(w)
		var uniCount float64
		if id >= 0 {
			uniCount = float64(m.uniCount(id))
		}
		p := lambdaUni * (uniCount + 1) / (total + vocab)
		if w2 >= 0 {
			p += lambdaBi * share(m.bi[w2], id)
			if w1 >= 0 {
				p += lambdaTri * share(m.tri[[2]int32{w1, w2}], id)
			}
		}
		loss -= math.Log(p)
		tokens++
		w1, w2 = w2, id
	}
	return loss, tokens
}

// lookup is the id of w (-1: unknown), as Start finds a prompt's words.
func (m *Model) lookup(w string) int32 {
	if id, ok := m.ids[w]; ok {
		return id
	}
	if id, ok := m.ids[strings.ToLower(w)]; ok {
		return id
	}
	return -1
}

func (m *Model) uniCount(id int32) uint32 {
	if m.uniByID == nil {
		return 0
	}
	return m.uniByID[id]
}

// share is the probability of id among candidates (0 when unseen there).
func share(c []next, id int32) float64 {
	var total, n float64
	for _, x := range c {
		total += float64(x.count)
		if x.id == id {
			n = float64(x.count)
		}
	}
	if total == 0 {
		return 0
	}
	return n / total
}
