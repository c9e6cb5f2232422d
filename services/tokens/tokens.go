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

// Blocks are the prompt an engine sees, in the blocks that make it up:
// the tools offered (one block, first, when there are any), each message
// rendered with a ChatML-like template, then the opening of the
// assistant's turn. A prompt's tokens are the sum of its blocks' tokens,
// so that a block counts the same wherever it appears: an engine that
// already processed the leading blocks of a prompt (a prefix cache) knows
// exactly how many tokens it did not process again.
func Blocks(msgs []*inferencev1.Message, tools []*inferencev1.Tool) []string {
	var out []string
	if len(tools) > 0 {
		var b strings.Builder
		b.WriteString("<|im_start|>tools\n")
		for _, t := range tools {
			b.WriteString(t.GetName() + ": " + t.GetDescription() + "\n" + t.GetParametersJson() + "\n")
		}
		b.WriteString("<|im_end|>\n")
		out = append(out, b.String())
	}
	for _, m := range msgs {
		var b strings.Builder
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
		out = append(out, b.String())
	}
	return append(out, AssistantTurn)
}

// AssistantTurn is the last block of every chat prompt.
const AssistantTurn = "<|im_start|>assistant\n"

// Request is the number of prompt tokens of a request: its blocks', or,
// for a fill-in-the-middle (suffix set, one message holding the raw
// prompt), the prompt's and the suffix's as they are.
func Request(msgs []*inferencev1.Message, suffix *string, tools []*inferencev1.Tool) int64 {
	if suffix != nil && len(msgs) == 1 {
		return int64(Count(msgs[0].GetContent()) + Count(*suffix))
	}
	var n int64
	for _, b := range Blocks(msgs, tools) {
		n += int64(Count(b))
	}
	return n
}

// Prompt is the number of prompt tokens of a conversation without tools.
func Prompt(msgs []*inferencev1.Message) int64 { return Request(msgs, nil, nil) }
