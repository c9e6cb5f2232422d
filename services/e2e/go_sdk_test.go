package e2e_test

import (
	"encoding/json"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
)

// goSDK is the official Go SDK's client of the platform's API at base
// (/v1/ or /beta/), with its key, without retries.
func goSDK(p *stack.Platform, base string) openai.Client {
	return openai.NewClient(option.WithBaseURL(p.APIURL+base), option.WithAPIKey(p.Key), option.WithMaxRetries(0))
}

// The rest of the DeepSeek surface with the official OpenAI Go SDK (tools
// and logprobs are TestToolCalls' and TestLogprobs'): json_object parsed,
// /user/balance through the SDK's raw Get, and thinking deltas, which the
// SDK keeps as an extra field of the delta (DeepSeek's reasoning_content).
func TestOpenAIGoSDK(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{})
	ctx := t.Context()
	client := goSDK(p, "/v1/")

	t.Run("json_object parsed", func(t *testing.T) {
		res, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:          "deepseek-chat",
			Messages:       []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Answer in JSON: what is light?")},
			ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &openai.ResponseFormatJSONObjectParam{}},
			MaxTokens:      openai.Int(40),
		})
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(res.Choices[0].Message.Content), &obj); err != nil || len(obj) == 0 {
			t.Fatalf("json_object: %q (%v)", res.Choices[0].Message.Content, err)
		}
	})

	t.Run("/user/balance", func(t *testing.T) {
		var b struct {
			IsAvailable  bool `json:"is_available"`
			BalanceInfos []struct {
				Currency     string `json:"currency"`
				TotalBalance string `json:"total_balance"`
			} `json:"balance_infos"`
		}
		if err := client.Get(ctx, "user/balance", nil, &b); err != nil {
			t.Fatal(err)
		}
		if !b.IsAvailable || len(b.BalanceInfos) != 1 || b.BalanceInfos[0].Currency != "USD" || b.BalanceInfos[0].TotalBalance == "" {
			t.Fatalf("balance %+v", b)
		}
	})

	t.Run("thinking deltas", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:     "deepseek-v4-flash",
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What becomes of light in a prism?")},
			MaxTokens: openai.Int(300),
		})
		var reasoning, content string
		for stream.Next() {
			for _, c := range stream.Current().Choices {
				if f, ok := c.Delta.JSON.ExtraFields["reasoning_content"]; ok && f.Raw() != "" && f.Raw() != "null" {
					var piece string
					if err := json.Unmarshal([]byte(f.Raw()), &piece); err != nil {
						t.Fatalf("reasoning_content %s: %v", f.Raw(), err)
					}
					if content != "" && piece != "" {
						t.Fatal("reasoning_content after the answer began")
					}
					reasoning += piece
				}
				content += c.Delta.Content
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if reasoning == "" || content == "" {
			t.Fatalf("reasoning %q, content %q", reasoning, content)
		}
	})
}
