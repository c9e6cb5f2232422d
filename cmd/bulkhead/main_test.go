package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

func TestCommandLineErrors(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		wantText string
	}{
		{nil, 2, "usage: bulkhead <command>"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"up", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"up", "--no-such-flag"}, 2, "flag provided but not defined: -no-such-flag"},
		{[]string{"help"}, 0, "translate  print the xDS configuration"},
		{[]string{"up", "--upstream", "llama"}, 2, "want NAME=URL"},
		{[]string{"up", "--upstream", "llama=ftp://host/v1"}, 2, `--upstream "llama=ftp://host/v1": "ftp://host/v1" must be an http:// or https:// URL`},
		{[]string{"models"}, 2, "usage: bulkhead models"},
		{[]string{"models", "get"}, 2, "want a model name"},
		{[]string{"models", "frob"}, 2, `unknown command "frob"`},
		{[]string{"models", "apply"}, 1, "no file to apply (-f FILE)"},
		{[]string{"models", "list", "--state-dir", "/nonexistent"}, 1, "no operator certificate in /nonexistent/secrets/operator"},
	} {
		var out, errOut strings.Builder
		code := run(tc.args, &out, &errOut)
		if code != tc.code {
			t.Errorf("bulkhead %v: exit %d; want %d", tc.args, code, tc.code)
		}
		if text := out.String() + errOut.String(); !strings.Contains(text, tc.wantText) {
			t.Errorf("bulkhead %v printed %q; want it to contain %q", tc.args, text, tc.wantText)
		}
	}
}

const goodDir = `apiVersion: v1
kind: Service
metadata: {name: chat}
spec:
  ports: [{name: grpc, port: 9000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: chat-1
  labels: {kubernetes.io/service-name: chat}
addressType: IPv4
ports: [{name: grpc, port: 50051}]
endpoints: [{addresses: [127.0.0.1]}]
`

func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestValidate(t *testing.T) {
	good := writeDir(t, map[string]string{"chat.yaml": goodDir})
	var out, errOut strings.Builder
	if code := run([]string{"validate", "-f", good}, &out, &errOut); code != 0 {
		t.Fatalf("validate on a valid directory: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "valid") {
		t.Errorf("validate printed %q", out.String())
	}

	bad := writeDir(t, map[string]string{"chat.yaml": goodDir + `---
apiVersion: mesh.bulkhead.dev/v1alpha1
kind: BackendPolicy
metadata: {name: chat}
spec:
  targetRefs: [{group: "", kind: Service, name: chat}]
  retry: {numRetries: 1, retryOn: [unavailable], perTryTimeout: soon}
`})
	out.Reset()
	errOut.Reset()
	if code := run([]string{"validate", "-f", bad}, &out, &errOut); code != 1 {
		t.Fatalf("validate on an invalid directory: exit %d; want 1", code)
	}
	want := filepath.Join(bad, "chat.yaml") + `:16: BackendPolicy default/chat: spec.retry.perTryTimeout: Invalid value: "soon"`
	if !strings.Contains(out.String(), want) {
		t.Errorf("validate printed:\n%s\nwant a line containing:\n%s", out.String(), want)
	}
}

// A route that the xDS schema refuses is left out and named with its input.
func TestValidateReportsRoutesLeftOut(t *testing.T) {
	dir := writeDir(t, map[string]string{"chat.yaml": goodDir + `---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: odd}
spec:
  parentRefs: [{group: "", kind: Service, name: chat}]
  rules:
  - matches: [{headers: [{name: "x\nbad", value: "1"}]}]
    backendRefs: [{name: chat, port: 9000}]
`})
	var out, errOut strings.Builder
	if code := run([]string{"validate", "-f", dir}, &out, &errOut); code != 1 {
		t.Fatalf("validate: exit %d; want 1\n%s", code, out.String())
	}
	want := `(from GRPCRoute default/odd rule 0 match 0 (` + filepath.Join(dir, "chat.yaml") + `:16)) left out of route configuration "chat.default:9000"`
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "HeaderMatcher.Name") {
		t.Fatalf("validate printed:\n%s", out.String())
	}
}

func TestTranslate(t *testing.T) {
	dir := writeDir(t, map[string]string{"chat.yaml": goodDir})
	var out, errOut strings.Builder
	if code := run([]string{"translate", "-f", dir, "--node", "grpc/caller", "-o", "json"}, &out, &errOut); code != 0 {
		t.Fatalf("translate: exit %d: %s", code, errOut.String())
	}
	var doc map[string][]map[string]any
	if err := json.Unmarshal([]byte(out.String()), &doc); err != nil {
		t.Fatalf("translate -o json printed invalid JSON: %v", err)
	}
	if len(doc["clusters"]) != 1 || doc["clusters"][0]["name"] != "chat.default:9000" {
		t.Fatalf("clusters = %v; want chat.default:9000", doc["clusters"])
	}
	for _, args := range [][]string{
		{"translate", "-f", dir, "-o", "xml"},
		{"translate", "-f", dir, "--node", "mystery/x"},
		{"translate"},
	} {
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("bulkhead %v: exit %d; want 2", args, code)
		}
	}
}

func TestStatusAgainstARunningControlPlane(t *testing.T) {
	dir := writeDir(t, map[string]string{"chat.yaml": goodDir + `---
apiVersion: mesh.bulkhead.dev/v1alpha1
kind: BackendPolicy
metadata: {name: chat}
spec:
  targetRefs: [{group: "", kind: Service, name: ghost}]
  timeout: {request: 1s}
`})
	cp, err := controlplane.Start(t.Context(), controlplane.Options{ConfigDirs: []string{dir}, XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	var out, errOut strings.Builder
	testenv.Eventually(t, 20*time.Second, "bulkhead status against the control plane", func() error {
		out.Reset()
		errOut.Reset()
		return testenv.Until(run([]string{"status", "--admin-address", cp.AdminAddr()}, &out, &errOut) == 0, "status: %s", errOut.String())
	})
	for _, want := range []string{
		"BackendPolicy  default/chat",
		"spec.targetRefs[0]: Service default/ghost not found",
		"1 problem(s):",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status printed:\n%s\nwant it to contain %q", out.String(), want)
		}
	}
	// Nothing listening: a clear error, not a hang.
	if code := run([]string{"status", "--admin-address", "127.0.0.1:1"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "is it running?") {
		t.Errorf("status with no control plane: exit %d, %q", code, errOut.String())
	}
}

func TestBootstrap(t *testing.T) {
	var out, errOut strings.Builder
	if code := run([]string{"bootstrap", "--name", "chat", "--node-id", "chat-1", "--xds-address", "127.0.0.1:18000"}, &out, &errOut); code != 0 {
		t.Fatalf("bootstrap: exit %d: %s", code, errOut.String())
	}
	var bs struct {
		Node struct {
			ID       string                       `json:"id"`
			Metadata map[string]map[string]string `json:"metadata"`
		} `json:"node"`
		Template string `json:"server_listener_resource_name_template"`
	}
	if err := json.Unmarshal([]byte(out.String()), &bs); err != nil {
		t.Fatalf("grpc bootstrap is not JSON: %v", err)
	}
	if bs.Node.ID != "chat-1" || bs.Node.Metadata["bulkhead"]["role"] != "grpc" || bs.Node.Metadata["bulkhead"]["name"] != "chat" || bs.Template == "" {
		t.Fatalf("grpc bootstrap: %+v", bs)
	}
	out.Reset()
	if code := run([]string{"bootstrap", "--role", "gateway", "--name", "ai", "--node-id", "ai-1"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "api_type: DELTA_GRPC") {
		t.Fatalf("envoy bootstrap: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run([]string{"bootstrap", "--role", "gateway", "--name", "ai", "--node-id", "ai-1", "--xds-cert-dir", "/etc/bulkhead/certs"}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), `certificate_chain: {filename: "/etc/bulkhead/certs/cert.pem"}`) || !strings.Contains(out.String(), "spiffe://bulkhead.local/ns/default/sa/control-plane") {
		t.Fatalf("envoy bootstrap with xDS mTLS: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	for _, args := range [][]string{
		{"bootstrap"},
		{"bootstrap", "--name", "x", "--role", "mystery"},
		{"bootstrap", "--name", "x", "--xds-address", "nowhere"},
	} {
		errOut.Reset()
		if code := run(args, &out, &errOut); code != 2 || errOut.Len() == 0 {
			t.Errorf("bulkhead %v: exit %d, %q; want 2 and a reason", args, code, errOut.String())
		}
	}
}

// apply validates before it writes: one bad object and nothing is written,
// with every problem named by file, line and field; good objects land in
// STATE/models, one file each.
func TestModelsApplyValidatesFirst(t *testing.T) {
	state := t.TempDir()
	good := "apiVersion: models.bulkhead.dev/v1alpha1\nkind: Model\nmetadata: {name: llama}\nspec:\n  engine: openai\n  limits: {contextLength: 8192}\n  backends: [{name: local, baseURL: http://127.0.0.1:11434/v1}]\n"
	bad := strings.Replace(good, "http://127.0.0.1:11434/v1", "127.0.0.1:11434", 1)
	dir := writeDir(t, map[string]string{"good.yaml": good, "bad.yaml": strings.Replace(bad, "name: llama", "name: other", 1)})
	var out, errOut strings.Builder
	code := run([]string{"models", "apply", "--state-dir", state, "-f", filepath.Join(dir, "good.yaml"), "-f", filepath.Join(dir, "bad.yaml")}, &out, &errOut)
	if want := `bad.yaml:1: Model other: spec.backends[0].baseURL: "127.0.0.1:11434" must be an http:// or https:// URL`; code != 1 || !strings.Contains(errOut.String(), want) || !strings.Contains(errOut.String(), "nothing applied") {
		t.Fatalf("exit %d: %s\nwant %s", code, errOut.String(), want)
	}
	if entries, _ := os.ReadDir(filepath.Join(state, "models")); len(entries) != 0 {
		t.Fatalf("%d files written for a refused apply", len(entries))
	}
	out.Reset()
	errOut.Reset()
	if code := run([]string{"models", "apply", "--state-dir", state, "--wait", "0", "-f", filepath.Join(dir, "good.yaml")}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	written, err := os.ReadFile(filepath.Join(state, "models", "llama.yaml"))
	if err != nil || !strings.Contains(string(written), good) {
		t.Fatalf("written %q (%v)", written, err)
	}
	out.Reset()
	if code := run([]string{"models", "delete", "llama", "--state-dir", state}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "the model is disabled") {
		t.Fatalf("delete: exit %d: %s%s", code, out.String(), errOut.String())
	}
	if _, err := os.Stat(filepath.Join(state, "models", "llama.yaml")); !os.IsNotExist(err) {
		t.Fatalf("still there after delete: %v", err)
	}
}
