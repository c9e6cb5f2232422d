package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/services/apierr"
	"github.com/bulkhead-mesh/bulkhead/services/apistream"
)

// chatCmd streams a reply from the running platform's public API, with the
// development key `bulkhead up` wrote.
func chatCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bulkhead chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", envOr("BULKHEAD_API", "http://127.0.0.1:8080"), "base URL of the API (default $BULKHEAD_API or http://127.0.0.1:8080)")
	keyFile := fs.String("key-file", ".bulkhead/dev-api-key", "file holding the API key (the key itself may be in $BULKHEAD_API_KEY)")
	model := fs.String("model", "deepseek-v4-flash", "model")
	thinking := fs.String("thinking", "", "thinking mode: enabled or disabled (default: the model's); the chain of thought is printed on stderr")
	maxTokens := fs.Int("max-tokens", 0, "largest reply in tokens (0: the model's default)")
	temperature := fs.Float64("temperature", -1, "sampling temperature in [0, 2] (default: the API's)")
	system := fs.String("system", "", "a system message")
	usage := fs.Bool("usage", true, "print the token usage on stderr at the end")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bulkhead chat [flags] TEXT")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	text := strings.TrimSpace(strings.Join(fs.Args(), " "))
	if text == "" {
		fmt.Fprintln(stderr, "bulkhead chat: say something: bulkhead chat \"hello\"")
		return 2
	}
	key := os.Getenv("BULKHEAD_API_KEY")
	if key == "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "bulkhead chat: no API key: %v (is `make run` running? it writes %s)\n", err, *keyFile)
			return 1
		}
		key = strings.TrimSpace(string(b))
	}
	msgs := []map[string]string{}
	if *system != "" {
		msgs = append(msgs, map[string]string{"role": "system", "content": *system})
	}
	msgs = append(msgs, map[string]string{"role": "user", "content": text})
	body := map[string]any{"model": *model, "messages": msgs, "stream": true, "stream_options": map[string]bool{"include_usage": true}}
	if *maxTokens > 0 {
		body["max_tokens"] = *maxTokens
	}
	if *temperature >= 0 {
		body["temperature"] = *temperature
	}
	switch *thinking {
	case "":
	case "enabled", "disabled":
		body["thinking"] = map[string]string{"type": *thinking}
	default:
		fmt.Fprintf(stderr, "bulkhead chat: -thinking %q: must be enabled or disabled\n", *thinking)
		return 2
	}
	b, _ := json.Marshal(body)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*api, "/")+"/v1/chat/completions", bytes.NewReader(b))
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead chat: %v\n", err)
		return 2
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead chat: %v (is `make run` running?)\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "bulkhead chat: %s: %s\n", resp.Status, apiErrorMessage(resp.Body))
		return 1
	}
	finish := ""
	thought := false // the chain of thought is being printed
	var usageLine string
	var streamErr error // an error event in the stream
	done, err := apistream.Read(resp.Body, func(c *apistream.Chunk) error {
		if c.Error != nil {
			streamErr = errors.New(c.Error.Message)
			return streamErr
		}
		for _, ch := range c.Choices {
			if r := ch.Delta.ReasoningContent; r != "" {
				thought = true
				fmt.Fprint(stderr, r)
			}
			if ch.Delta.Content != "" && thought {
				thought = false
				fmt.Fprintln(stderr)
			}
			fmt.Fprint(stdout, ch.Delta.Content)
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
		if c.Usage != nil && *usage {
			usageLine = fmt.Sprintf("(%d prompt tokens, %d from cache; %d completion tokens, %d of them reasoning)\n", c.Usage.PromptTokens, c.Usage.PromptCacheHitTokens,
				c.Usage.CompletionTokens, c.Usage.CompletionTokensDetails.ReasoningTokens)
		}
		return nil
	})
	defer fmt.Fprint(stderr, usageLine)
	var malformed *apistream.MalformedError
	switch {
	case done:
		fmt.Fprintln(stdout)
		if finish == "length" {
			fmt.Fprintln(stderr, "(cut at max_tokens)")
		}
		return 0
	case streamErr != nil:
		fmt.Fprintf(stderr, "\nbulkhead chat: %v\n", streamErr)
		return 1
	case errors.As(err, &malformed):
		fmt.Fprintf(stderr, "\nbulkhead chat: bad chunk: %v\n", malformed.Err)
		return 1
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "\n(interrupted)")
		return 130
	}
	fmt.Fprintf(stderr, "\nbulkhead chat: the stream ended early: %v\n", err)
	return 1
}

func apiErrorMessage(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 1<<16))
	return apierr.MessageOf(b)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
