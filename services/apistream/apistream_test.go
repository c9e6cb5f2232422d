package apistream_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/services/apistream"
)

func TestRead(t *testing.T) {
	stream := ": keep-alive\n\n" +
		`data: {"choices":[{"delta":{"content":"Hel"}}]}` + "\n\n" +
		`data:{"choices":[{"delta":{"content":"lo"},"finish_reason":"stop"}]}` + "\n\n" +
		`data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_cache_hit_tokens":1}}` + "\n\n" +
		"data: [DONE]\n\n"
	var text strings.Builder
	var finish string
	var prompt, hit int64
	done, err := apistream.Read(strings.NewReader(stream), func(c *apistream.Chunk) error {
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			prompt, hit = c.Usage.PromptTokens, c.Usage.PromptCacheHitTokens
		}
		return nil
	})
	if !done || err != nil || text.String() != "Hello" || finish != "stop" || prompt != 3 || hit != 1 {
		t.Fatalf("done %v, err %v, text %q, finish %q, usage %d/%d", done, err, text.String(), finish, prompt, hit)
	}

	// Cut before [DONE]: not done, no error.
	if done, err := apistream.Read(strings.NewReader(`data: {"choices":[]}`+"\n"), func(*apistream.Chunk) error { return nil }); done || err != nil {
		t.Fatalf("cut stream: done %v, err %v", done, err)
	}
	// Malformed chunk.
	var m *apistream.MalformedError
	if _, err := apistream.Read(strings.NewReader("data: {nope\n"), func(*apistream.Chunk) error { return nil }); !errors.As(err, &m) {
		t.Fatalf("malformed chunk: %v", err)
	}
	// The callback's error stops the reading, returned as it is.
	stop := errors.New("stop")
	calls := 0
	_, err = apistream.Read(strings.NewReader(stream), func(*apistream.Chunk) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("callback error: %v after %d calls", err, calls)
	}
}
