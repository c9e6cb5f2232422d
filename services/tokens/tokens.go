// Package tokens counts tokens the way usage is billed: a real BPE
// tokenizer (cl100k_base, ranks embedded in the binary, no network) over
// the conversation rendered with one fixed chat template.
package tokens

import (
	"strings"
	"sync"

	"github.com/tiktoken-go/tokenizer"

	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
)

var (
	once  sync.Once
	codec tokenizer.Codec
)

func get() tokenizer.Codec {
	once.Do(func() {
		c, err := tokenizer.Get(tokenizer.Cl100kBase)
		if err != nil {
			// The ranks are compiled in: this cannot fail at run time.
			panic("tokens: cl100k_base: " + err.Error())
		}
		codec = c
	})
	return codec
}

// Warm loads the ranks now rather than on the first request.
func Warm() { get() }

// Count is the number of tokens of text.
func Count(text string) int {
	if text == "" {
		return 0
	}
	n, err := get().Count(text)
	if err != nil {
		return len(text) // unreachable with valid UTF-8 replaced
	}
	return n
}

// Encode returns the token ids of text.
func Encode(text string) []uint {
	ids, _, _ := get().Encode(text)
	return ids
}

// Decode returns the text of token ids.
func Decode(ids []uint) string {
	s, _ := get().Decode(ids)
	return s
}

// roleNames are the template's role tags.
var roleNames = map[inferencev1.Role]string{
	inferencev1.Role_ROLE_SYSTEM:    "system",
	inferencev1.Role_ROLE_USER:      "user",
	inferencev1.Role_ROLE_ASSISTANT: "assistant",
	inferencev1.Role_ROLE_TOOL:      "tool",
}

// Render writes a conversation as the prompt an engine sees (a ChatML-like
// template ending with the assistant's turn).
func Render(msgs []*inferencev1.Message) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("<|im_start|>")
		b.WriteString(roleNames[m.GetRole()])
		if m.GetName() != "" {
			b.WriteString(" name=" + m.GetName())
		}
		b.WriteString("\n")
		b.WriteString(m.GetContent())
		for _, tc := range m.GetToolCalls() {
			b.WriteString("\n<tool_call>" + tc.GetFunctionName() + " " + tc.GetFunctionArguments() + "</tool_call>")
		}
		b.WriteString("<|im_end|>\n")
	}
	b.WriteString("<|im_start|>assistant\n")
	return b.String()
}

// Request is the number of prompt tokens of a request: its conversation
// rendered with the template and the tools it offers, or, for a
// fill-in-the-middle (suffix set, one message holding the raw prompt), the
// prompt and the suffix as they are.
func Request(msgs []*inferencev1.Message, suffix *string, tools []*inferencev1.Tool) int64 {
	if suffix != nil && len(msgs) == 1 {
		return int64(Count(msgs[0].GetContent()) + Count(*suffix))
	}
	return Prompt(msgs) + Tools(tools)
}

// Tools is the number of prompt tokens of the tools a request offers:
// each one's name, description and schema, as a model reads them in its
// system turn.
func Tools(tools []*inferencev1.Tool) int64 {
	if len(tools) == 0 {
		return 0
	}
	var b strings.Builder
	b.WriteString("<|im_start|>tools\n")
	for _, t := range tools {
		b.WriteString(t.GetName() + ": " + t.GetDescription() + "\n" + t.GetParametersJson() + "\n")
	}
	b.WriteString("<|im_end|>\n")
	return int64(Count(b.String()))
}

// Prompt is the number of prompt tokens of a conversation.
func Prompt(msgs []*inferencev1.Message) int64 { return int64(Count(Render(msgs))) }
