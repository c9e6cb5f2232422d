package inference

import (
	"testing"

	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

func count(blocks ...string) int64 {
	var n int64
	for _, b := range blocks {
		n += int64(tokens.Count(b))
	}
	return n
}

// The prefix cache hits the leading blocks it holds, only for their
// tenant and model, never a block after a miss, and forgets the least
// recently used first.
func TestPrefixCache(t *testing.T) {
	c := newPrefixCache(4)
	a, b, x := "<|im_start|>system\nYou are a prism.<|im_end|>\n", "<|im_start|>user\nWhat of light?<|im_end|>\n", "<|im_start|>user\nAnother opening.<|im_end|>\n"
	if total, cached := c.prefill("acct", "m", []string{a, b}); total != count(a, b) || cached != 0 {
		t.Fatalf("first prompt: %d tokens, %d cached", total, cached)
	}
	if total, cached := c.prefill("acct", "m", []string{a, b, tokens.AssistantTurn}); total != count(a, b, tokens.AssistantTurn) || cached != count(a, b) {
		t.Fatalf("its continuation: %d tokens, %d cached; want %d cached", total, cached, count(a, b))
	}
	for _, other := range []struct{ scope, model string }{{"other", "m"}, {"acct", "m2"}, {"", "m"}} {
		if _, cached := c.prefill(other.scope, other.model, []string{a, b}); cached != 0 {
			t.Fatalf("scope %q model %q hit %d tokens of another's prefix", other.scope, other.model, cached)
		}
	}
	// b after x is not b after a.
	if _, cached := c.prefill("acct", "m", []string{x, b}); cached != 0 {
		t.Fatalf("a block after a different prefix hit %d tokens", cached)
	}
	// Least recently used out first: with room for two blocks, a used
	// again outlives x.
	c = newPrefixCache(2)
	c.prefill("acct", "m", []string{a})
	c.prefill("acct", "m", []string{x})
	if _, cached := c.prefill("acct", "m", []string{a}); cached != count(a) {
		t.Fatal("a was not kept")
	}
	c.prefill("acct", "m", []string{b})
	if _, cached := c.prefill("acct", "m", []string{x}); cached != 0 {
		t.Fatal("x, the least recently used, was kept over a")
	}
	if _, cached := c.prefill("acct", "m", []string{b}); cached != count(b) {
		t.Fatal("b was not kept")
	}
	if total, cached := (*prefixCache)(nil).prefill("acct", "m", []string{a}); total != count(a) || cached != 0 {
		t.Fatalf("no cache: %d, %d", total, cached)
	}
}
