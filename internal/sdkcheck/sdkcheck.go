// Package sdkcheck runs the official OpenAI Node SDK (npm openai, pinned
// in tools/node-sdk, with the machine's Node) against a running platform:
// the checks of openai-node.cjs, which a test requires all to pass.
package sdkcheck

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Checks is how many checks openai-node.cjs runs.
const Checks = 8

// Node installs the SDK if needed (tools/node-sdk/install.sh) and runs the
// checks against the API at api (http://host:port) with key; toolModel
// is a model whose upstream calls tools. Every check must pass.
func Node(t testing.TB, root, api, key, toolModel string) {
	t.Helper()
	root, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	sdk := filepath.Join(root, "tools", "node-sdk")
	if out, err := exec.Command(filepath.Join(sdk, "install.sh")).CombinedOutput(); err != nil {
		t.Fatalf("installing the Node SDK: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(root, "internal", "sdkcheck", "openai-node.cjs"))
	cmd.Env = append(os.Environ(), "BULKHEAD_API="+api, "BULKHEAD_KEY="+key, "NODE_SDK_DIR="+sdk, "TOOL_MODEL="+toolModel)
	out, err := cmd.CombinedOutput()
	t.Logf("the OpenAI Node SDK against %s:\n%s", api, out)
	passed := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "ok ") {
			passed++
		}
	}
	if err != nil || passed != Checks {
		t.Fatalf("the Node SDK checks: %d of %d passed (%v)", passed, Checks, err)
	}
}
