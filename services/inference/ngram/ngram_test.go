package ngram_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/services/inference/ngram"
)

var model = ngram.Train(ngram.Corpus())

func run(prompt string, s ngram.Sampling, n int) string {
	g := model.Start(prompt, s)
	var b strings.Builder
	for i := 0; i < n; i++ {
		p, ok := g.Next(context.Background())
		if !ok {
			break
		}
		b.WriteString(p)
	}
	return b.String()
}

func TestTrainedOnTheCorpus(t *testing.T) {
	vocab, n, tri := model.Stats()
	if vocab < 5000 || n < 100000 || tri < 30000 {
		t.Fatalf("vocabulary %d, %d training tokens, %d trigram contexts: the corpus was not learnt", vocab, n, tri)
	}
}

func TestSameSeedSameOutput(t *testing.T) {
	s := ngram.Sampling{Temperature: 1, TopP: 1, Seed: 42}
	a, b := run("Tell me about light", s, 60), run("Tell me about light", s, 60)
	if a != b || a == "" {
		t.Fatalf("seed 42 gave %q then %q", a, b)
	}
	s.Seed = 43
	if c := run("Tell me about light", s, 60); c == a {
		t.Fatalf("seeds 42 and 43 gave the same text %q", a)
	}
}

func TestGreedyIsDeterministicWithoutSeed(t *testing.T) {
	a := run("the Rays of Light", ngram.Sampling{Temperature: 0, Seed: 1}, 30)
	b := run("the Rays of Light", ngram.Sampling{Temperature: 0, Seed: 2}, 30)
	if a != b {
		t.Fatalf("temperature 0 depends on the seed: %q vs %q", a, b)
	}
}

// A continuation follows the prompt's last words: at temperature 0 the
// first word is one the corpus has after them (capitalised: it opens the
// reply).
func TestContinuationUsesTheContext(t *testing.T) {
	out := run("the Light which is", ngram.Sampling{Temperature: 0}, 5)
	if len(strings.Fields(out)) < 3 {
		t.Fatalf("continuation %q", out)
	}
	if !strings.Contains(ngram.Corpus(), "which is "+strings.ToLower(strings.Fields(out)[0])) {
		t.Errorf("first word %q never follows %q in the corpus", strings.Fields(out)[0], "which is")
	}
}

// top_p near 0 keeps only the most likely word: the same as greedy.
func TestTopPTruncates(t *testing.T) {
	greedy := run("the Rays of Light", ngram.Sampling{Temperature: 0}, 30)
	nucleus := run("the Rays of Light", ngram.Sampling{Temperature: 1.5, TopP: 0.0001, Seed: 9}, 30)
	if greedy != nucleus {
		t.Fatalf("top_p 0.0001 %q; greedy %q", nucleus, greedy)
	}
}

func BenchmarkNextWord(b *testing.B) {
	g := model.Start("Light", ngram.Sampling{Temperature: 0.8, TopP: 0.95, Seed: 1})
	for b.Loop() {
		if _, ok := g.Next(context.Background()); !ok {
			g = model.Start("Light", ngram.Sampling{Temperature: 0.8, TopP: 0.95, Seed: 1})
		}
	}
}

// Continue carries on a text: the first piece is the next word, spaced as
// it follows the text (no second space after one), never a capitalised
// reply start.
func TestContinueCarriesOnTheText(t *testing.T) {
	next := func(text string) string {
		p, ok := model.Continue(text, ngram.Sampling{Seed: 1}).Next(context.Background())
		if !ok {
			t.Fatalf("no continuation of %q", text)
		}
		return p
	}
	if p := next("the Rays of"); !strings.HasPrefix(p, " ") || len(p) < 2 || p[1] == ' ' {
		t.Fatalf("after %q: %q; want a spaced word", "the Rays of", p)
	}
	if p := next("the Rays of Light, and"); p != strings.ToLower(p) {
		t.Fatalf("after %q: %q; want a word in lower case, as mid-sentence", "the Rays of Light, and", p)
	}
	if p := next("the Rays of "); strings.HasPrefix(p, " ") {
		t.Fatalf("after a trailing space: %q", p)
	}
	if p := next("Light is refracted."); !strings.HasPrefix(p, " ") || p[1] < 'A' || p[1] > 'Z' {
		t.Fatalf("after a full stop: %q; want a spaced capitalised word", p)
	}
}

// The penalties are real: greedy decoding repeats itself; a frequency
// penalty makes it use more distinct words (as a share of the words it
// wrote: a penalised generation may also end sooner), a negative one
// fewer; so does a presence penalty when sampling.
func TestPenalties(t *testing.T) {
	variety := func(s ngram.Sampling) float64 {
		ws := strings.Fields(run("the Rays of Light", s, 200))
		words := map[string]bool{}
		for _, w := range ws {
			words[strings.ToLower(strings.Trim(w, ".,;:!?()"))] = true
		}
		return float64(len(words)) / float64(len(ws))
	}
	plain, penalised, encouraged := variety(ngram.Sampling{}), variety(ngram.Sampling{FrequencyPenalty: 1.5}), variety(ngram.Sampling{FrequencyPenalty: -1})
	if penalised <= plain || encouraged > plain {
		t.Fatalf("share of distinct words: %.2f plain, %.2f with frequency_penalty 1.5, %.2f with -1", plain, penalised, encouraged)
	}
	sampled, present := variety(ngram.Sampling{Temperature: 0.7, Seed: 3}), variety(ngram.Sampling{Temperature: 0.7, Seed: 3, PresencePenalty: 2})
	if present <= sampled {
		t.Fatalf("share of distinct words: %.2f with presence_penalty 2, %.2f without", present, sampled)
	}
}

// The traced steps are the model's distribution: at each position the
// alternatives' probabilities sum to at most one (the end of the text
// takes the rest), the chosen word is among them with its own
// probability, and temperature does not change them.
func TestStepsAreTheModelsDistribution(t *testing.T) {
	steps := func(temperature float64) []ngram.Step {
		g := model.Start("the Rays of Light", ngram.Sampling{Temperature: temperature, TopP: 1, Seed: 9})
		g.Trace(1 << 20)
		var out []ngram.Step
		for range 30 {
			piece, ok := g.Next(context.Background())
			if !ok {
				break
			}
			st := g.Step()
			var sum float64
			found := false
			for _, alt := range st.Top {
				sum += math.Exp(alt.Logprob)
				found = found || (alt.Piece == piece && alt.Logprob == st.Logprob)
			}
			if sum > 1+1e-9 || sum < 0.5 || !found || st.Logprob > 0 {
				t.Fatalf("step %q: logprob %v, alternatives summing to %v, chosen among them %v", piece, st.Logprob, sum, found)
			}
			out = append(out, st)
		}
		return out
	}
	hot, greedy := steps(1.5), steps(0)
	if len(hot) < 10 || len(greedy) < 10 {
		t.Fatalf("%d and %d steps", len(hot), len(greedy))
	}
	// Greedy decoding picks the most likely word at a context the model
	// knows.
	if g := greedy[1]; g.Logprob != g.Top[0].Logprob {
		t.Fatalf("greedy chose %v, the most likely is %v", g.Logprob, g.Top[0].Logprob)
	}
}
