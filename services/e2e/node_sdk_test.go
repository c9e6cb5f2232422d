package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/models"
)

// The official OpenAI Node SDK (npm openai, pinned in tools/node-sdk, run
// with the machine's Node) against the test stack: the checks of
// testdata/openai-node.cjs, tools through a passthrough upstream (whole,
// and streamed deltas the SDK assembles), the builtin engine's 422 on
// tools, logprobs, json_object, /user/balance, FIM and thinking deltas.
func TestOpenAINodeSDK(t *testing.T) {
	root := stack.RepoRoot()
	sdk := filepath.Join(root, "tools", "node-sdk")
	if out, err := exec.Command(filepath.Join(sdk, "install.sh")).CombinedOutput(); err != nil {
		t.Fatalf("installing the Node SDK: %v\n%s", err, out)
	}
	up := newFakeUpstream(t, "node", 4)
	dir := t.TempDir()
	m := fmt.Sprintf("apiVersion: models.bulkhead.dev/v1alpha1\nkind: Model\nmetadata: {name: tooled}\nspec:\n  engine: openai\n  limits: {contextLength: 4096, maxOutputTokens: 256}\n  backends: [{name: up, baseURL: %q, model: up}]\n", up.url())
	if err := os.WriteFile(filepath.Join(dir, "tooled.yaml"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	p := stack.StartPlatform(t, stack.PlatformOptions{Models: models.Options{ConfigDirs: []string{dir}}})
	testenv.Eventually(t, 20*time.Second, "tooled served", func() error {
		r := do(t, t.Context(), "POST", p.APIURL+"/v1/chat/completions", p.Key, map[string]any{"model": "tooled", "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
		return testenv.Until(r.status == 200, "%d %s", r.status, r.body)
	})

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(root, "services", "e2e", "testdata", "openai-node.cjs"))
	cmd.Env = append(os.Environ(), "BULKHEAD_API="+p.APIURL, "BULKHEAD_KEY="+p.Key, "NODE_SDK_DIR="+sdk, "TOOL_MODEL=tooled")
	out, err := cmd.CombinedOutput()
	t.Logf("node:\n%s", out)
	passed := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "ok ") {
			passed++
		}
	}
	if err != nil || passed != 8 {
		t.Fatalf("the Node SDK checks: %d of 8 passed (%v)", passed, err)
	}
}
