package modelconfig_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/services/models/modelconfig"
)

const good = `apiVersion: models.bulkhead.dev/v1alpha1
kind: Model
metadata: {name: llama}
spec:
  engine: openai
  limits: {contextLength: 8192, maxOutputTokens: 2048}
  prices: {cacheHit: "0.0028", cacheMiss: "0.14", output: "0.28"}
  thinking: disabled
  fallbacks: [deepseek-v4-flash]
  backends:
  - name: local
    baseURL: http://127.0.0.1:11434/v1
    model: llama3.2
    weight: 3
  - name: cloud
    baseURL: https://api.deepseek.com
    model: deepseek-v4-flash
    priority: 1
    apiKey: {vaultPath: bulkhead/upstreams/deepseek}
    timeouts: {firstToken: 20s}
`

func TestDecodeGood(t *testing.T) {
	objs, errs := modelconfig.Decode("m.yaml", []byte("# models\n---\n"+good))
	if len(errs) != 0 || len(objs) != 1 {
		t.Fatalf("objects %d, errors %v", len(objs), errs)
	}
	o := objs[0]
	if o.Model.Spec.Thinking != "disabled" {
		t.Fatalf("thinking %q", o.Model.Spec.Thinking)
	}
	if !o.Accepted() || o.Origin != "m.yaml:3" || o.Name != "llama" {
		t.Fatalf("%s %s accepted=%v: %s", o.Origin, o.Name, o.Accepted(), o.Message())
	}
	m := modelconfig.ToRegistry(o.Model)
	if m.Engine != "openai" || m.EngineModel != "llama3.2" || m.MaxOutputTokens != 2048 || m.DefaultMaxTokens != 2048 ||
		m.PromptPriceMicrosPerMtok != 140000 || m.CacheHitPriceMicrosPerMtok != 2800 || m.CompletionPriceMicrosPerMtok != 280000 {
		t.Fatalf("registry model: %v", m)
	}
	if len(m.Upstreams) != 2 {
		t.Fatalf("upstreams: %v", m.Upstreams)
	}
	local, cloud := m.Upstreams[0], m.Upstreams[1]
	if local.Weight != 3 || local.Priority != 0 || local.ApiKeyVaultPath != "" || cloud.Weight != 1 || cloud.Priority != 1 ||
		cloud.ApiKeyVaultPath != "bulkhead/upstreams/deepseek" || cloud.ApiKeyVaultKey != "api_key" ||
		cloud.FirstTokenTimeout.AsDuration().Seconds() != 20 || cloud.IdleTimeout.AsDuration() != modelconfig.DefaultIdleTimeout {
		t.Fatalf("upstreams: %v", m.Upstreams)
	}
	if m.PassiveHealth.GetConsecutiveFailures() != modelconfig.DefaultConsecutiveFailures {
		t.Fatalf("passive health: %v", m.PassiveHealth)
	}
}

// Every refusal names the field at fault.
func TestRefusalsNameTheField(t *testing.T) {
	for _, c := range []struct{ name, from, to, want string }{
		{"unknown field", "  thinking: disabled", "  thinkin: disabled", `unknown field "spec.thinkin"`},
		{"engine", "engine: openai", "engine: vllm", `spec.engine: "vllm" is not an engine`},
		{"no backends", good[strings.Index(good, "  backends:"):], "", "spec.backends: engine openai needs at least one backend"},
		{"base URL", "http://127.0.0.1:11434/v1", "ftp://127.0.0.1/v1", `spec.backends[0].baseURL: "ftp://127.0.0.1/v1" must be an http:// or https:// URL`},
		{"base URL path", "http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1/chat/completions", `spec.backends[0].baseURL: "http://127.0.0.1:11434/v1/chat/completions" must end before /chat/completions`},
		{"vault path", "bulkhead/upstreams/deepseek", "bulkhead/auth", `spec.backends[1].apiKey.vaultPath: "bulkhead/auth" must be under bulkhead/upstreams/`},
		{"vault path escape", "bulkhead/upstreams/deepseek", "bulkhead/upstreams/../auth", `spec.backends[1].apiKey.vaultPath: "bulkhead/upstreams/../auth" is not a secret's path`},
		{"duplicate backend", "name: cloud", "name: local", `spec.backends[1].name: "local" is used by another backend`},
		{"weight", "weight: 3", "weight: 3000", `spec.backends[0].weight: 3000 must be in 0..1000`},
		{"timeout", "firstToken: 20s", "firstToken: soon", `spec.backends[1].timeouts.firstToken: "soon" is not a duration`},
		{"limits", "maxOutputTokens: 2048", "maxOutputTokens: 9000", `spec.limits.maxOutputTokens: must be in 1..contextLength (8192)`},
		{"price", `output: "0.28"`, `output: "0,28"`, `spec.prices.output: "0,28" is not a decimal price`},
		{"fallback self", "fallbacks: [deepseek-v4-flash]", "fallbacks: [llama]", `spec.fallbacks[0]: names the model itself`},
		{"thinking", "thinking: disabled", "thinking: maybe", `spec.thinking: "maybe" is not a thinking mode`},
		{"YAML 1.1 boolean", "thinking: disabled", "thinking: off", "spec.thinking of type string"},
		{"name", "name: llama}", "name: Llama}", `metadata.name: "Llama" must be`},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(good, c.from, c.to, 1)
			if doc == good {
				t.Fatalf("%q is not in the document", c.from)
			}
			objs, errs := modelconfig.Decode("m.yaml", []byte(doc))
			if len(errs) != 0 || len(objs) != 1 {
				t.Fatalf("objects %d, errors %v", len(objs), errs)
			}
			o := objs[0]
			if o.Accepted() || !strings.Contains(o.Message(), c.want) {
				t.Fatalf("accepted=%v: %s\nwant %s", o.Accepted(), o.Message(), c.want)
			}
		})
	}
}

// A directory: each file's objects, what belongs to no object reported
// apart, a name defined twice refused, other kinds refused.
func TestLoadDirs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", good)
	write("b.yaml", strings.Replace(good, "name: llama}", "name: tiny}", 1)+"---\n"+good)
	write("c.yml", "apiVersion: mesh.bulkhead.dev/v1alpha1\nkind: BackendPolicy\nmetadata: {name: x}\n")
	write("d.yaml", "{not yaml")
	write("notes.txt", "ignored")
	write(".swap.yaml", "{ignored")
	set := modelconfig.LoadDirs(dir, filepath.Join(dir, "missing"))
	var names []string
	for _, o := range set.Objects {
		names = append(names, o.Name)
	}
	if strings.Join(names, ",") != "llama,tiny" {
		t.Fatalf("objects %v", names)
	}
	all := ""
	for _, e := range set.Errs {
		all += e.Error() + "\n"
	}
	for _, want := range []string{"b.yaml:22: Model llama: defined twice; first at " + filepath.Join(dir, "a.yaml") + ":1", "c.yml:1: apiVersion/kind", "d.yaml:1: not valid YAML"} {
		if !strings.Contains(all, want) {
			t.Errorf("errors lack %q:\n%s", want, all)
		}
	}
	if len(set.Errs) != 3 {
		t.Errorf("%d errors:\n%s", len(set.Errs), all)
	}
}

func TestMicros(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "0": 0, "0.14": 140000, "1": 1000000, "0.000001": 1, "12.5": 12500000} {
		if got, err := modelconfig.Micros(in); err != nil || got != want {
			t.Errorf("Micros(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "0.0000001", ".5", "1e3", "abc"} {
		if _, err := modelconfig.Micros(bad); err == nil {
			t.Errorf("Micros(%q) accepted", bad)
		}
	}
}
