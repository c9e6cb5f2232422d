// Package inference is the inference service: model engines behind one
// interface, served as InferenceService.Generate (server streaming).
//
// Engines: "builtin" (a word-trigram model trained at start on a corpus
// shipped in the repo; CPU; honours max_tokens, stop, temperature, top_p
// and seed) and "openai" (any OpenAI-compatible upstream over HTTP: vLLM,
// llama.cpp, Ollama, DeepSeek; its stream is passed through).
package inference

import (
	"context"

	inferencev1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/inference/v1"
)

// Request is one generation.
type Request struct {
	// ID is the request's id (for logs, and the ids of tool calls an
	// upstream did not name).
	ID string
	// Model is the engine's own model name (the registry's engine_model).
	Model    string
	Messages []*inferencev1.Message
	Sampling *inferencev1.Sampling
	// PromptTokens is the conversation's size as billed (tokens.Prompt),
	// counted once by the server.
	PromptTokens int64
	// Continuation, when set, is the part of the reply a dead generation
	// already sent: the engine emits only what follows it.
	Continuation *inferencev1.Continuation
	// Suffix, when set, makes this a fill-in-the-middle completion of the
	// one message's raw prompt.
	Suffix *string
	// Tools the model may call, and whether it must.
	Tools      []*inferencev1.Tool
	ToolChoice *inferencev1.ToolChoice
}

// callsTools says whether the request lets the model call a tool: tools
// were given and tool_choice is not "none".
func (r Request) callsTools() bool {
	return len(r.Tools) > 0 && r.ToolChoice.GetMode() != inferencev1.ToolChoice_MODE_NONE
}

// Piece is a piece of the reply: content, (thinking mode) a piece of the
// chain of thought, or pieces of tool calls. Exactly one is set.
type Piece struct {
	Content   string
	Reasoning string
	ToolCalls []*inferencev1.ToolCall
	// Logprobs (with Sampling.logprobs) are the answer's tokens that end
	// in Content.
	Logprobs []*inferencev1.Logprob
}

// Result ends a generation.
type Result struct {
	Finish       inferencev1.FinishReason
	PromptTokens int64
	// CompletionTokens counts the whole reply, the chain of thought and a
	// continuation's already-sent part included: a continued reply is
	// billed as if it had never been cut.
	CompletionTokens int64
	ReasoningTokens  int64
	// CachedPromptTokens are the prompt tokens a cache spared (an
	// upstream's; the builtin engine's prefix cache is the server's).
	CachedPromptTokens int64
}

// Engine generates text. emit is called with each piece in order; an
// error from emit (the caller went away) ends the generation with it.
// Usage counts what was emitted, also when the generation ends early.
type Engine interface {
	Generate(ctx context.Context, req Request, emit func(Piece) error) (Result, error)
}
