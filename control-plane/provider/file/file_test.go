package file_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/provider"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider/file"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

const svc = "apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec:\n  ports: [{name: grpc, port: 9000}]\n"

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadReadsYAMLTreesAndSkipsTheRest(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), strings.Replace(svc, "%s", "a", 1))
	write(t, filepath.Join(dir, "sub", "b.yml"), strings.Replace(svc, "%s", "b", 1))
	write(t, filepath.Join(dir, "notes.txt"), "not yaml")
	write(t, filepath.Join(dir, ".a.yaml.swp"), "editor junk")
	write(t, filepath.Join(dir, ".git", "c.yaml"), strings.Replace(svc, "%s", "c", 1))
	write(t, filepath.Join(dir, "bad.yaml"), "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {portz: []}\n")
	res, err := file.Load(dir)
	if len(res.Services) != 2 {
		t.Fatalf("loaded %d Services; want a and b (not the hidden ones)", len(res.Services))
	}
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "bad.yaml")+`:1: Service default/bad: unknown field "spec.portz"`) {
		t.Fatalf("error %v; want the bad file, line, object and field", err)
	}
	if _, err := file.Load(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "config directory") {
		t.Fatalf("missing directory: %v", err)
	}
}

func TestRunSendsAnUpdateOnEveryChange(t *testing.T) {
	// Two directories read as one input, as `bulkhead up` runs it: the
	// policies and the endpoint files it writes.
	dir, endpoints := t.TempDir(), t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), strings.Replace(svc, "%s", "a", 1))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := make(chan provider.Update, 16)
	p := &file.Provider{Dirs: []string{dir, endpoints}, Log: slog.New(slog.DiscardHandler)}
	go p.Run(ctx, out)
	next := func(what string) provider.Update {
		t.Helper()
		select {
		case u := <-out:
			return u
		case <-time.After(10 * time.Second):
			t.Fatalf("no update %s", what)
			return provider.Update{}
		}
	}
	if u := next("at start"); len(u.Resources.Services) != 1 {
		t.Fatalf("first update has %d Services; want 1", len(u.Resources.Services))
	}
	// The provider may send an update per file event: the test follows the
	// latest.
	var latest atomic.Pointer[provider.Update]
	go func() {
		for {
			select {
			case u := <-out:
				latest.Store(&u)
			case <-ctx.Done():
				return
			}
		}
	}()
	services := func(n int) func() error {
		return func() error {
			u := latest.Load()
			if u == nil {
				return fmt.Errorf("no update since the change")
			}
			return testenv.Until(len(u.Resources.Services) == n, "the latest update has %d Services; want %d", len(u.Resources.Services), n)
		}
	}
	// A file in a directory created after the start is seen too.
	write(t, filepath.Join(dir, "new", "b.yaml"), strings.Replace(svc, "%s", "b", 1))
	testenv.Eventually(t, 20*time.Second, "new/b.yaml read", services(2))
	write(t, filepath.Join(endpoints, "c.yaml"), strings.Replace(svc, "%s", "c", 1))
	testenv.Eventually(t, 20*time.Second, "c.yaml in the second directory read", services(3))
}
