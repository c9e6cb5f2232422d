// Package file is the universal-mode provider: Kubernetes-style YAML files
// in one or more directory trees (*.yaml, *.yml), re-read as a whole when any
// of them changes. `bulkhead up` uses two: the platform's policies and the
// EndpointSlice files it writes for the processes it starts.
package file

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/fsnotify/fsnotify"

	"github.com/bulkhead-mesh/bulkhead/control-plane/provider"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/internal/yamldoc"
)

// Load reads every YAML file under the directories, as one input. Files and
// directories whose name starts with "." are skipped (editor swap files,
// .git).
func Load(dirs ...string) (*resource.Resources, error) {
	res := &resource.Resources{}
	var errs []error
	for _, dir := range dirs {
		errs = append(errs, loadDir(res, dir))
	}
	res.Sort()
	return res, errors.Join(errs...)
}

func loadDir(res *resource.Resources, dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("config directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("config directory %s is not a directory", dir)
	}
	return yamldoc.Walk(dir, func(path string, data []byte) error { return resource.Decode(res, path, data) })
}

// Provider watches directories.
type Provider struct {
	Dirs []string
	Log  *slog.Logger
}

var _ provider.Provider = (*Provider)(nil)

// Run sends the directory's content now and after every change.
func (p *Provider) Run(ctx context.Context, out chan<- provider.Update) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.Close()
	for _, dir := range p.Dirs {
		if err := yamldoc.WatchTree(w, dir); err != nil {
			return err
		}
	}
	// A refused edit keeps the object's last accepted version in force.
	var last provider.LastAccepted
	send := func() bool {
		res, err := Load(p.Dirs...)
		last.Apply(res)
		select {
		case out <- provider.Update{Resources: res, Err: err}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !send() {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			yamldoc.Follow(w, ev)
			if !send() {
				return nil
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			p.Log.Warn("watching the config directories", "dirs", p.Dirs, "error", err)
		}
	}
}
