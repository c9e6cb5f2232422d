package yamldoc

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// WatchTree watches dir and every directory under it that Walk reads
// (hidden ones are skipped, as Walk skips them).
func WatchTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if err := w.Add(path); err != nil {
			return fmt.Errorf("watch %s: %w", path, err)
		}
		return nil
	})
}

// Follow keeps a watch on a directory created under a watched tree: ev's
// directory is watched too, so that what is written into it is seen.
func Follow(w *fsnotify.Watcher, ev fsnotify.Event) {
	if ev.Has(fsnotify.Create) {
		if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
			_ = WatchTree(w, ev.Name)
		}
	}
}
