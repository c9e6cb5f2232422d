package e2e_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/internal/upstreamtest"
	"github.com/bulkhead-mesh/bulkhead/services/models"
)

// weatherTool is the tool of the tests, with a schema the upstream must
// receive as it was sent.
var weatherTool = openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
	Name:        "get_weather",
	Description: openai.String("The weather in a city"),
	Parameters: shared.FunctionParameters{
		"type":       "object",
		"properties": map[string]any{"city": map[string]any{"type": "string"}},
		"required":   []string{"city"},
	},
})

// Tools through an upstream, with the official OpenAI Go SDK as the
// client: tools and tool_choice reach the upstream as sent, its tool call
// comes back whole (non-streaming) and in deltas the SDK's accumulator
// assembles (streaming), the tool's answer goes back as a tool message;
// the builtin engine refuses tools with a 422 naming them; thinking mode
// requires the reasoning_content of a tool turn back; a stream cut inside
// a tool call is not continued; the response cache keys on the tools.
func TestToolCalls(t *testing.T) {
	up := upstreamtest.New(t, "t", 4)
	dir := t.TempDir()
	// Two backends on the one upstream: a call cut there could be
	// failed over.
	writeUpstreamModel(t, dir, "tooled", "thinking: none", up, up)
	writeUpstreamModel(t, dir, "thinker", "thinking: enabled", up, up)
	p := stack.StartPlatform(t, stack.PlatformOptions{Models: models.Options{ConfigDirs: []string{dir}}})
	ctx := t.Context()
	client := goSDK(p, "/v1/")
	ask := openai.ChatCompletionNewParams{
		Model:    "tooled",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Paris?")},
		Tools:    []openai.ChatCompletionToolUnionParam{weatherTool},
	}
	wantArgs := strings.Join(upstreamtest.ToolArguments, "")

	var first *openai.ChatCompletion
	testenv.Eventually(t, 20*time.Second, "tooled served", func() error {
		var err error
		first, err = client.Chat.Completions.New(ctx, ask)
		return err
	})
	t.Run("a tool call, whole", func(t *testing.T) {
		ch := first.Choices[0]
		if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 {
			t.Fatalf("finish %q, tool calls %+v", ch.FinishReason, ch.Message.ToolCalls)
		}
		call := ch.Message.ToolCalls[0]
		if call.ID != "call_t" || call.Type != "function" || call.Function.Name != "get_weather" || call.Function.Arguments != wantArgs {
			t.Fatalf("tool call %+v", call)
		}
		if first.Usage.CompletionTokens != 11 {
			t.Fatalf("usage %+v: the upstream's 11 completion tokens", first.Usage)
		}
		sent := up.LastBody(t)
		tool := sent["tools"].([]any)[0].(map[string]any)["function"].(map[string]any)
		params, _ := tool["parameters"].(map[string]any)
		if tool["name"] != "get_weather" || tool["description"] != "The weather in a city" || params["required"].([]any)[0] != "city" {
			t.Fatalf("the upstream got tools %v", sent["tools"])
		}
		if _, set := sent["tool_choice"]; set {
			t.Fatalf("tool_choice %v sent though the client left it to the default", sent["tool_choice"])
		}
	})

	t.Run("the tool's answer goes back", func(t *testing.T) {
		call := first.Choices[0].Message.ToolCalls[0]
		next := ask
		next.Messages = append(append([]openai.ChatCompletionMessageParamUnion{}, ask.Messages...),
			first.Choices[0].Message.ToParam(), openai.ToolMessage("18 degrees and sunny", call.ID))
		next.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("auto")}
		res, err := client.Chat.Completions.New(ctx, next)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Choices[0].Message.Content; got != "The tool says: 18 degrees and sunny" || res.Choices[0].FinishReason != "stop" {
			t.Fatalf("reply %q, finish %q", got, res.Choices[0].FinishReason)
		}
		msgs := up.LastBody(t)["messages"].([]any)
		asst, tool := msgs[1].(map[string]any), msgs[2].(map[string]any)
		calls, _ := asst["tool_calls"].([]any)
		if asst["role"] != "assistant" || asst["content"] != nil || len(calls) != 1 ||
			calls[0].(map[string]any)["id"] != "call_t" || calls[0].(map[string]any)["function"].(map[string]any)["arguments"] != wantArgs {
			t.Fatalf("the upstream got the assistant turn %v", asst)
		}
		if tool["role"] != "tool" || tool["tool_call_id"] != "call_t" || tool["content"] != "18 degrees and sunny" {
			t.Fatalf("the upstream got the tool turn %v", tool)
		}
		if c := up.LastBody(t)["tool_choice"]; c != "auto" {
			t.Fatalf("tool_choice sent %v", c)
		}
	})

	t.Run("streamed deltas, assembled by the SDK", func(t *testing.T) {
		forced := ask
		forced.ToolChoice = openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_weather"})
		forced.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client.Chat.Completions.NewStreaming(ctx, forced)
		acc := openai.ChatCompletionAccumulator{}
		var finished []openai.FinishedChatCompletionToolCall
		chunks := 0
		for stream.Next() {
			chunks++
			acc.AddChunk(stream.Current())
			if tc, ok := acc.JustFinishedToolCall(); ok {
				finished = append(finished, tc)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if len(finished) != 1 || finished[0].Name != "get_weather" || finished[0].Arguments != wantArgs || finished[0].ID != "call_t" {
			t.Fatalf("finished tool calls %+v", finished)
		}
		if ch := acc.Choices[0]; ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 || ch.Message.ToolCalls[0].Function.Arguments != wantArgs {
			t.Fatalf("accumulated %+v", ch)
		}
		if chunks < len(upstreamtest.ToolArguments)+2 {
			t.Fatalf("%d chunks: the arguments came in one piece, not as deltas", chunks)
		}
		choice := up.LastBody(t)["tool_choice"].(map[string]any)
		if choice["type"] != "function" || choice["function"].(map[string]any)["name"] != "get_weather" {
			t.Fatalf("tool_choice sent %v", choice)
		}
	})

	t.Run("the builtin engine refuses tools", func(t *testing.T) {
		builtin := ask
		builtin.Model = "deepseek-chat" // the builtin engine, not thinking
		_, err := client.Chat.Completions.New(ctx, builtin)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 422 || apiErr.Param != "tools" || !strings.Contains(apiErr.Message, "cannot call tools") {
			t.Fatalf("builtin with tools: %v", err)
		}
		// Streamed too, before the stream starts.
		stream := client.Chat.Completions.NewStreaming(ctx, builtin)
		for stream.Next() {
		}
		if !errors.As(stream.Err(), &apiErr) || apiErr.StatusCode != 422 || apiErr.Param != "tools" {
			t.Fatalf("builtin streamed with tools: %v", stream.Err())
		}
		// tool_choice "none" asks for no call, which it can honour.
		builtin.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("none")}
		builtin.MaxTokens = openai.Int(8)
		if res, err := client.Chat.Completions.New(ctx, builtin); err != nil || res.Choices[0].Message.Content == "" {
			t.Fatalf("builtin with tool_choice none: %v", err)
		}
	})

	t.Run("bad tools are 422s naming the field", func(t *testing.T) {
		url := p.APIURL + "/v1/chat/completions"
		tools := []any{map[string]any{"type": "function", "function": map[string]any{"name": "get_weather"}}}
		for _, c := range []struct {
			body  map[string]any
			param string
		}{
			{map[string]any{"tools": tools, "tool_choice": map[string]any{"type": "function", "function": map[string]any{"name": "nope"}}}, "tool_choice.function.name"},
			{map[string]any{"tools": tools, "tool_choice": "sometimes"}, "tool_choice"},
			{map[string]any{"tool_choice": "required"}, "tool_choice"},
			{map[string]any{"tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "has space"}}}}, "tools[0].function.name"},
			{map[string]any{"tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "f", "parameters": []int{1}}}}}, "tools[0].function.parameters"},
			{map[string]any{"tools": append(tools, tools[0])}, "tools[1].function.name"},
			{map[string]any{"tools": []any{map[string]any{"type": "custom", "function": map[string]any{"name": "f"}}}}, "tools[0].type"},
			{map[string]any{"messages": []any{
				map[string]any{"role": "user", "content": "hi"},
				map[string]any{"role": "tool", "tool_call_id": "call_x", "content": "18"}}}, "messages[1].tool_call_id"},
		} {
			body := map[string]any{"model": "tooled", "messages": []any{map[string]any{"role": "user", "content": "hi"}}}
			for k, v := range c.body {
				body[k] = v
			}
			r := do(t, ctx, "POST", url, p.Key, body)
			if _, _, _, param := r.errorOf(t); r.status != 422 || param != c.param {
				t.Errorf("%v: %d %s, want a 422 on %s", c.body, r.status, r.body, c.param)
			}
		}
	})

	t.Run("thinking mode wants the tool turn's reasoning back", func(t *testing.T) {
		url := p.APIURL + "/v1/chat/completions"
		turn := func(reasoning any) map[string]any {
			asst := map[string]any{"role": "assistant", "content": "", "tool_calls": []any{map[string]any{
				"id": "call_t", "type": "function", "function": map[string]any{"name": "get_weather", "arguments": wantArgs}}}}
			if reasoning != nil {
				asst["reasoning_content"] = reasoning
			}
			return map[string]any{"model": "thinker", "tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "get_weather"}}},
				"messages": []any{map[string]any{"role": "user", "content": "Weather in Paris?"}, asst,
					map[string]any{"role": "tool", "tool_call_id": "call_t", "content": "18"}}}
		}
		r := do(t, ctx, "POST", url, p.Key, turn(nil))
		if msg, _, _, param := r.errorOf(t); r.status != 422 || param != "messages[1].reasoning_content" || !strings.Contains(msg, "thinking mode") {
			t.Fatalf("tool turn without its reasoning: %d %s", r.status, r.body)
		}
		r = do(t, ctx, "POST", url, p.Key, turn("I should look the weather up."))
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		sent := up.LastBody(t)
		if got := sent["messages"].([]any)[1].(map[string]any)["reasoning_content"]; got != "I should look the weather up." {
			t.Fatalf("the upstream got reasoning_content %v", got)
		}
		if sent["thinking"].(map[string]any)["type"] != "enabled" {
			t.Fatalf("thinking sent %v", sent["thinking"])
		}
	})

	t.Run("a cut tool call is not continued", func(t *testing.T) {
		up.Set("cut")
		defer up.Set("ok")
		before := up.Calls()
		got, err := streamReply(p.APIURL+"/v1/chat/completions", p.Key, map[string]any{"model": "tooled", "stream": true,
			"tools":    []any{map[string]any{"type": "function", "function": map[string]any{"name": "get_weather"}}},
			"messages": []any{map[string]any{"role": "user", "content": "Weather in Paris?"}}}, nil)
		if err == nil || got.errorEvent == "" || got.finish != "" {
			t.Fatalf("a stream cut in a tool call: finish %q, error event %q (%v)", got.finish, got.errorEvent, err)
		}
		if n := up.Calls() - before; n != 1 {
			t.Fatalf("the upstreams were called %d times: a tool call was continued or retried", n)
		}
	})

	t.Run("the response cache keys on the tools", func(t *testing.T) {
		det := ask
		det.Temperature = openai.Float(0)
		a, err := client.Chat.Completions.New(ctx, det)
		if err != nil {
			t.Fatal(err)
		}
		before := up.Calls()
		b, err := client.Chat.Completions.New(ctx, det)
		if err != nil || up.Calls() != before {
			t.Fatalf("the same request with tools was not a cache hit (%d upstream calls, %v)", up.Calls()-before, err)
		}
		if len(b.Choices[0].Message.ToolCalls) != 1 || b.Choices[0].Message.ToolCalls[0].Function.Arguments != a.Choices[0].Message.ToolCalls[0].Function.Arguments ||
			b.Usage.PromptTokensDetails.CachedTokens == 0 {
			t.Fatalf("cached reply %+v", b.Choices[0].Message)
		}
		other := det
		other.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_time"})}
		c, err := client.Chat.Completions.New(ctx, other)
		if err != nil || up.Calls() != before+1 || c.Choices[0].Message.ToolCalls[0].Function.Name != "get_time" {
			t.Fatalf("other tools answered from the cache: %v", err)
		}
	})
}
