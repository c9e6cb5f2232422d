package e2e_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	authv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/auth/v1"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
	usersv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/users/v1"
)

// newKey creates an account with the given settings and a key of it.
func newKey(t *testing.T, p *stack.Platform, acct *usersv1.CreateAccountRequest) (account, key string) {
	t.Helper()
	a, err := usersv1.NewUsersServiceClient(p.Dial("users")).CreateAccount(t.Context(), acct, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	k, err := authv1.NewAuthServiceClient(p.Dial("auth")).CreateKey(t.Context(), &authv1.CreateKeyRequest{AccountId: a.Account.Id}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	return a.Account.Id, k.Secret
}

// Every error of the contract, with its status, the OpenAI JSON shape and
// DeepSeek's codes.
func TestErrors(t *testing.T) {
	p := stack.StartPlatform(t, stack.PlatformOptions{})
	ctx := t.Context()

	_, broke := newKey(t, p, &usersv1.CreateAccountRequest{Name: "broke", Tier: "standard", BalanceMicros: 0})
	_, slow := newKey(t, p, &usersv1.CreateAccountRequest{Name: "slow", Tier: "standard", BalanceMicros: 1 << 40, Limits: &usersv1.Limits{TokensPerMinute: 10}})
	mc := modelsv1.NewModelsServiceClient(p.Dial("models"))
	if _, err := mc.RegisterModel(ctx, &modelsv1.RegisterModelRequest{Model: &modelsv1.Model{Name: "solo", Engine: "builtin", EngineModel: "opticks-3gram",
		ContextLength: 1024, MaxOutputTokens: 256, DefaultMaxTokens: 16}}, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.SetModelState(ctx, &modelsv1.SetModelStateRequest{Name: "solo", State: modelsv1.ModelState_MODEL_STATE_UNHEALTHY}); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, method, path, key string
		body                    any
		status                  int
		code                    string
		param                   any
		retryAfter              bool
	}{
		{"malformed JSON", "POST", "/v1/chat/completions", p.Key, `{"model": "deepseek-chat", "messages": [`, 400, "invalid_request_body", nil, false},
		{"no key", "POST", "/v1/chat/completions", "", chatBody(nil), 401, "invalid_api_key", nil, false},
		{"bad key", "POST", "/v1/chat/completions", "sk-nope", chatBody(nil), 401, "invalid_api_key", nil, false},
		{"budget exhausted", "POST", "/v1/chat/completions", broke, chatBody(nil), 402, "insufficient_balance", nil, false},
		{"temperature out of range", "POST", "/v1/chat/completions", p.Key, chatBody(map[string]any{"temperature": 3}), 422, "invalid_parameter", "temperature", false},
		{"temperature of the wrong type", "POST", "/v1/chat/completions", p.Key, chatBody(map[string]any{"temperature": "hot"}), 422, "invalid_parameter", "temperature", false},
		{"top_p", "POST", "/v1/chat/completions", p.Key, chatBody(map[string]any{"top_p": 0}), 422, "invalid_parameter", "top_p", false},
		{"unknown model", "POST", "/v1/chat/completions", p.Key, chatBody(map[string]any{"model": "gpt-17"}), 422, "invalid_parameter", "model", false},
		{"no messages", "POST", "/v1/chat/completions", p.Key, chatBody(map[string]any{"messages": []any{}}), 422, "invalid_parameter", "messages", false},
		{"bad role", "POST", "/v1/chat/completions", p.Key, chatBody(map[string]any{"messages": []any{map[string]any{"role": "robot", "content": "x"}}}), 422, "invalid_parameter", "messages[0].role", false},
		{"max_tokens above the model's", "POST", "/v1/chat/completions", p.Key, chatBody(map[string]any{"max_tokens": 100000}), 422, "invalid_parameter", "max_tokens", false},
		{"n", "POST", "/v1/chat/completions", p.Key, chatBody(map[string]any{"n": 2}), 422, "invalid_parameter", "n", false},
		{"response_format", "POST", "/v1/chat/completions", p.Key, chatBody(map[string]any{"response_format": map[string]any{"type": "xml"}}), 422, "invalid_parameter", "response_format.type", false},
		{"stream_options without stream", "POST", "/v1/chat/completions", p.Key, chatBody(map[string]any{"stream_options": map[string]any{"include_usage": true}}), 422, "invalid_parameter", "stream_options", false},
		{"tokens per minute", "POST", "/v1/chat/completions", slow, chatBody(nil), 429, "rate_limit_exceeded", nil, true},
		{"model and fallbacks unavailable", "POST", "/v1/chat/completions", p.Key, chatBody(map[string]any{"model": "solo"}), 503, "overloaded", nil, true},
		{"body too large", "POST", "/v1/chat/completions", p.Key, `{"model":"` + strings.Repeat("x", 5<<20) + `"}`, 413, "request_too_large", nil, false},
		{"unknown endpoint", "GET", "/v1/nothing", p.Key, nil, 404, "not_found", nil, false},
		{"wrong method", "GET", "/v1/chat/completions", p.Key, nil, 405, "method_not_allowed", nil, false},
		{"unknown model by id", "GET", "/v1/models/gpt-17", p.Key, nil, 404, "not_found", nil, false},
		{"another account's usage", "GET", "/v1/usage?account_id=acct_other", p.Key, nil, 403, "permission_denied", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, ctx, c.method, p.APIURL+c.path, c.key, c.body)
			if r.status != c.status {
				t.Fatalf("status %d; want %d: %s", r.status, c.status, r.body)
			}
			_, _, code, param := r.errorOf(t)
			if code != c.code || param != c.param {
				t.Fatalf("code %q param %v; want %q %v: %s", code, param, c.code, c.param, r.body)
			}
			if got := r.header.Get("Retry-After"); (got != "") != c.retryAfter {
				t.Fatalf("Retry-After %q; want one: %v", got, c.retryAfter)
			}
		})
	}
}
