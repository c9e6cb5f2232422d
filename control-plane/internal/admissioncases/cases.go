// Package admissioncases loads the admission cases of the policy CRDs
// (control-plane/api/v1alpha1/testdata/admission-cases.yaml), shared by the
// test against a real kube-apiserver and the test of the in-process
// validator, so that both enforce exactly the same rules.
package admissioncases

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"sigs.k8s.io/yaml"
)

// Case is one object and what admission must say of it.
type Case struct {
	Name string `json:"name"`
	// WantErr are fragments of the refusal; empty means accepted.
	WantErr []string `json:"wantErr"`
	// Object is the policy (kind and spec; apiVersion, name and namespace
	// are set by the test).
	Object map[string]any `json:"-"`
	Raw    string         `json:"object"`
}

// Load reads the cases.
func Load(t *testing.T) []Case {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(self), "..", "..", "api", "v1alpha1", "testdata", "admission-cases.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []Case
	if err := yaml.UnmarshalStrict(data, &cases); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for i := range cases {
		if err := yaml.Unmarshal([]byte(cases[i].Raw), &cases[i].Object); err != nil {
			t.Fatalf("%s: case %q: %v", path, cases[i].Name, err)
		}
	}
	if len(cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return cases
}
