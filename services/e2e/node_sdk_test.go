package e2e_test

import (
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/sdkcheck"
	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/internal/upstreamtest"
	"github.com/bulkhead-mesh/bulkhead/services/models"
)

// The official OpenAI Node SDK (npm openai, pinned in tools/node-sdk, run
// with the machine's Node) against the test stack: the checks of
// internal/sdkcheck, tools through a passthrough upstream (whole,
// and streamed deltas the SDK assembles), the builtin engine's 422 on
// tools, logprobs, json_object, /user/balance, FIM and thinking deltas.
func TestOpenAINodeSDK(t *testing.T) {
	root := stack.RepoRoot()
	up := upstreamtest.New(t, "node", 4)
	dir := t.TempDir()
	writeUpstreamModel(t, dir, "tooled", "", up)
	p := stack.StartPlatform(t, stack.PlatformOptions{Models: models.Options{ConfigDirs: []string{dir}}})
	testenv.Eventually(t, 20*time.Second, "tooled served", func() error {
		r := do(t, t.Context(), "POST", p.APIURL+"/v1/chat/completions", p.Key, map[string]any{"model": "tooled", "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
		return testenv.Until(r.status == 200, "%d %s", r.status, r.body)
	})

	sdkcheck.Node(t, root, p.APIURL, p.Key, "tooled")
}
