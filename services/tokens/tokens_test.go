package tokens_test

import (
	"testing"

	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
	"github.com/bulkhead-mesh/bulkhead/services/tokens"
)

// cl100k_base's published counts for a few strings (as counted by OpenAI's
// tiktoken).
func TestCountIsCl100k(t *testing.T) {
	for text, want := range map[string]int{
		"":                          0,
		"hello world":               2,
		"The quick brown fox jumps": 5,
		"tiktoken is great!":        6,
	} {
		if got := tokens.Count(text); got != want {
			t.Errorf("Count(%q) = %d; want %d", text, got, want)
		}
	}
	ids := tokens.Encode("Light is reflected")
	if got := tokens.Decode(ids); got != "Light is reflected" {
		t.Errorf("round trip: %q", got)
	}
}

func TestPromptCountsTheRenderedConversation(t *testing.T) {
	one := []*inferencev1.Message{{Role: inferencev1.Role_ROLE_USER, Content: "hello"}}
	two := append(one, &inferencev1.Message{Role: inferencev1.Role_ROLE_ASSISTANT, Content: "hello"})
	p1, p2 := tokens.Prompt(one), tokens.Prompt(two)
	if p1 <= 1 || p2 <= p1 {
		t.Fatalf("prompt tokens %d then %d; want more than the content and growing", p1, p2)
	}
}
