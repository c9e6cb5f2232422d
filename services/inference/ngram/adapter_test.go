package ngram_test

import (
	"context"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/services/inference/ngram"
)

const question = "What colour is the sky over the harbour"
const answer = "The harbour sky is a pale violet at dawn and the gulls cry over the quay."

// An adapter learnt from a conversation makes the model answer with it
// and be less surprised by it; encoded and decoded, it is the same.
func TestAdapterTeachesTheModel(t *testing.T) {
	c := ngram.NewCounts()
	if n := c.Learn(question+" "+answer, 8); n != ngram.Tokens(question+" "+answer) {
		t.Fatalf("Learn counted %d tokens, Tokens %d", n, ngram.Tokens(question+" "+answer))
	}
	tuned := ngram.TrainWith(ngram.Corpus(), c)
	baseLoss, n := model.Loss(question, answer)
	tunedLoss, m := tuned.Loss(question, answer)
	if n != m || n == 0 {
		t.Fatalf("token counts %d vs %d", n, m)
	}
	if !(tunedLoss < baseLoss/2) {
		t.Fatalf("perplexity base %.1f, tuned %.1f: the adapter taught nothing", math.Exp(baseLoss/float64(n)), math.Exp(tunedLoss/float64(m)))
	}
	g := tuned.Start(question, ngram.Sampling{Temperature: 0})
	var out strings.Builder
	for range 8 {
		p, ok := g.Next(context.Background())
		if !ok {
			break
		}
		out.WriteString(p)
	}
	if !strings.Contains(strings.ToLower(out.String()), "harbour sky is a pale violet") {
		t.Fatalf("the tuned model answered %q", out.String())
	}
	if base := run(question, ngram.Sampling{Temperature: 0}, 8); base == out.String() {
		t.Fatalf("the tuned model answers as the base does: %q", base)
	}

	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ngram.DecodeCounts(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatal("the decoded adapter differs from the encoded one")
	}
	again, _ := back.MarshalBinary()
	if string(again) != string(b) {
		t.Fatal("the same counts encode to different bytes")
	}
	if _, err := ngram.DecodeCounts([]byte("not gzip")); err == nil {
		t.Fatal("garbage decoded")
	}
}
