package inference

import (
	"container/list"
	"crypto/sha256"
	"sync"

	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

// prefixCache is the builtin engine's prefix cache: the prompt blocks
// (tokens.Blocks: the tools, each message, the assistant's opening) this
// replica already processed, per tenant and model, as a chain: a block is
// known only after the same blocks before it, as a KV cache holds a
// prefix. Processing a prompt (tokenizing it, the engine's prefill) skips
// the leading blocks it holds; what it skipped is the request's
// prompt_cache_hit_tokens, exactly, since a prompt's tokens are the sum
// of its blocks'. Least recently used blocks go first.
type prefixCache struct {
	mu      sync.Mutex
	max     int
	order   *list.List // of [32]byte, most recent first
	entries map[[32]byte]cachedBlock
}

type cachedBlock struct {
	tokens int64
	at     *list.Element
}

func newPrefixCache(maxBlocks int) *prefixCache {
	return &prefixCache{max: maxBlocks, order: list.New(), entries: map[[32]byte]cachedBlock{}}
}

// chain is the key of block after the blocks whose key is prev.
func chain(prev [32]byte, block string) [32]byte {
	h := sha256.New()
	h.Write(prev[:])
	h.Write([]byte(block))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// prefill processes a prompt's blocks for scope and model: it returns
// their tokens and how many of them were the cached leading blocks, and
// remembers every block. A nil cache or an empty scope caches nothing.
func (c *prefixCache) prefill(scope, model string, blocks []string) (total, cached int64) {
	if c == nil || scope == "" || c.max <= 0 {
		for _, b := range blocks {
			total += int64(tokens.Count(b))
		}
		return total, 0
	}
	key := chain(sha256.Sum256([]byte(scope+"\x00"+model)), "")
	hits := true
	for _, b := range blocks {
		key = chain(key, b)
		if hits {
			if n, ok := c.hit(key); ok {
				total += n
				cached += n
				continue
			}
			hits = false
		}
		n := int64(tokens.Count(b))
		total += n
		c.put(key, n)
	}
	return total, cached
}

func (c *prefixCache) hit(key [32]byte) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if ok {
		c.order.MoveToFront(e.at)
	}
	return e.tokens, ok
}

func (c *prefixCache) put(key [32]byte, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		c.order.MoveToFront(e.at)
		return
	}
	c.entries[key] = cachedBlock{tokens: n, at: c.order.PushFront(key)}
	for len(c.entries) > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.entries, last.Value.([32]byte))
	}
}
