package components

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// modulePath is the product module; the directory of its go.mod is the
// repository root, whose bin/ holds the pinned tools (make tools).
const modulePath = "github.com/bulkhead-mesh/bulkhead"

// BinDirEnv overrides where the tools built by `make tools` are looked up.
const BinDirEnv = "BULKHEAD_BIN"

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// RepoRoot returns the repository root: the nearest parent of the working
// directory holding the product's go.mod.
func RepoRoot() (string, error) {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = fmt.Errorf("working directory: %w", err)
			return
		}
		for {
			if isProductModule(filepath.Join(dir, "go.mod")) {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = fmt.Errorf("no go.mod of module %s above the working directory; run from the repository or set %s", modulePath, BinDirEnv)
				return
			}
			dir = parent
		}
	})
	return rootDir, rootErr
}

func isProductModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module "); ok {
			return strings.TrimSpace(rest) == modulePath
		}
	}
	return false
}

// BinDir is where `make tools` puts the pinned binaries: $BULKHEAD_BIN, or
// bin/ at the repository root.
func BinDir() (string, error) {
	if d := os.Getenv(BinDirEnv); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin"), nil
}

// ErrMissingBinary is wrapped by every error about a binary that is not there.
var ErrMissingBinary = errors.New("binary not found")

// toolBinary returns the path of a tool built by `make tools`.
func toolBinary(name string) (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s: %w at %s: run `make tools` (or tools/build.sh %s) to build it", name, ErrMissingBinary, p, name)
	}
	return p, nil
}

// systemBinary returns the path of a distro-installed program, looking in
// PATH and then in the extra directories (glob patterns).
func systemBinary(name string, extra ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, pattern := range extra {
		matches, _ := filepath.Glob(filepath.Join(pattern, name))
		if len(matches) > 0 {
			// Glob sorts: the last is the newest version directory.
			return matches[len(matches)-1], nil
		}
	}
	return "", fmt.Errorf("%s: %w in PATH: run `make deps` (scripts/install-deps.sh installs it from the distro)", name, ErrMissingBinary)
}
