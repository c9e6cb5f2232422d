package localrun

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulkhead-mesh/bulkhead/services/models/modelconfig"
)

// Upstream is one `bulkhead up --upstream NAME=URL`: a model NAME served
// by the OpenAI-compatible server at URL (its model NAME too).
type Upstream struct {
	Name, URL string
}

// ParseUpstream reads NAME=URL, with the rules of a Model's name and of a
// backend's base URL.
func ParseUpstream(v string) (Upstream, error) {
	name, raw, ok := strings.Cut(v, "=")
	if !ok || name == "" || raw == "" {
		return Upstream{}, fmt.Errorf("--upstream %q: want NAME=URL, e.g. llama3.2=http://127.0.0.1:11434/v1", v)
	}
	if !modelconfig.NameRE.MatchString(name) {
		return Upstream{}, fmt.Errorf("--upstream %q: model name %q must be 1-128 characters of a-z, 0-9, '.', '_', ':', '-'", v, name)
	}
	if err := modelconfig.CheckBaseURL(raw); err != nil {
		return Upstream{}, fmt.Errorf("--upstream %q: %w", v, err)
	}
	return Upstream{Name: name, URL: strings.TrimSuffix(raw, "/")}, nil
}

// upstreamPrefix names the files --upstream writes in STATE/models.
const upstreamPrefix = "upstream-"

// ModelsStateDir is where `bulkhead up --upstream` and `bulkhead models
// apply` put Model objects, watched by the models service beside the
// platform's own (ModelsDir).
func ModelsStateDir(state string) string { return filepath.Join(state, "models") }

// writeUpstreams replaces the Model files of an earlier run's --upstream
// flags with this run's (a model whose file goes is disabled, not lost).
func writeUpstreams(dir string, ups []Upstream) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, upstreamPrefix+"*.yaml"))
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, u := range ups {
		path := filepath.Join(dir, upstreamPrefix+u.Name+".yaml")
		keep[path] = true
		body := fmt.Sprintf(`# Written by bulkhead up --upstream %s=%s; rewritten at each start.
apiVersion: models.bulkhead.dev/v1alpha1
kind: Model
metadata: {name: %s}
spec:
  engine: openai
  limits: {contextLength: 8192, maxOutputTokens: 4096, defaultMaxTokens: 1024}
  ownedBy: upstream
  backends:
  - {name: upstream, baseURL: %q, model: %q}
`, u.Name, u.URL, u.Name, u.URL, u.Name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			return err
		}
	}
	for _, p := range old {
		if !keep[p] {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// modelsArgs are the models service's --config-dir flags: the platform's
// models (when the directory exists) and the state directory's.
func modelsArgs(o Options, state string) []string {
	var args []string
	if o.ModelsDir != "" {
		if st, err := os.Stat(o.ModelsDir); err == nil && st.IsDir() {
			abs, _ := filepath.Abs(o.ModelsDir)
			args = append(args, "--config-dir", abs)
		}
	}
	return append(args, "--config-dir", ModelsStateDir(state))
}
