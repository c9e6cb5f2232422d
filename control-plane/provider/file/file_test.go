package file_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/provider"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider/file"
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
	// A file in a directory created after the start is seen too.
	write(t, filepath.Join(dir, "new", "b.yaml"), strings.Replace(svc, "%s", "b", 1))
	deadline := time.Now().Add(10 * time.Second)
	for {
		u := next("after adding new/b.yaml")
		if len(u.Resources.Services) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("new/b.yaml never showed up")
		}
	}
	write(t, filepath.Join(endpoints, "c.yaml"), strings.Replace(svc, "%s", "c", 1))
	for {
		u := next("after adding c.yaml in the second directory")
		if len(u.Resources.Services) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("c.yaml in the second directory never showed up")
		}
	}
}
