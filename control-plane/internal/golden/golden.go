// Package golden compares test output with files under testdata/, and
// rewrites them when asked: `go test ./... -update` (in the packages that
// have goldens) or BULKHEAD_UPDATE_GOLDEN=1 go test ./... (anywhere; `make
// golden`). Review the diff before committing.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files with the output of the tests")

// Updating reports whether goldens are being rewritten.
func Updating() bool { return *update || os.Getenv("BULKHEAD_UPDATE_GOLDEN") == "1" }

// Compare fails the test when got differs from the file at path.
func Compare(t *testing.T, path string, got []byte) {
	t.Helper()
	if Updating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `make golden` to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs from the output (run `make golden` and review the diff):\n%s", path, diff(want, got))
	}
}

// diff shows the first lines that differ, with context.
func diff(want, got []byte) string {
	w := bytes.Split(want, []byte("\n"))
	g := bytes.Split(got, []byte("\n"))
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl []byte
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if !bytes.Equal(wl, gl) {
			var b bytes.Buffer
			for j := max(0, i-3); j < i; j++ {
				b.WriteString("  " + string(w[j]) + "\n")
			}
			b.WriteString("- " + string(wl) + "\n+ " + string(gl) + "\n")
			return b.String()
		}
	}
	return ""
}
