// Command images writes one container image as a tarball, with no registry
// and no network: an empty base, one layer holding the named files (and, for
// a dynamically linked ELF, the shared libraries the host's dynamic linker
// resolves for it, from the machine's Debian packages), an entrypoint and a
// non-root user. `ctr images import`, `kind load image-archive` and
// `docker load` all read the result.
//
//	images -ref bulkhead/users:REV -o users.tar \
//	    -file bin/static/bulkhead-users:/bulkhead-users -entrypoint /bulkhead-users
//
// Flags may repeat: -file SRC:DST[:MODE], -dir DST[:MODE], -env K=V,
// -libs DST (add the shared-library closure of the file at DST).
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// entry is one file or directory of the layer.
type entry struct {
	src  string // host file; empty for a directory or generated content
	data []byte // generated content
	mode int64
	dir  bool
	link string // symlink target
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "images: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	ref := fs.String("ref", "", "image reference, e.g. bulkhead/users:REV (required)")
	out := fs.String("o", "", "output tarball (required)")
	entrypoint := fs.String("entrypoint", "", "entrypoint, space separated (required)")
	cmd := fs.String("cmd", "", "default arguments, space separated")
	user := fs.Int("user", 65532, "numeric user and group the image runs as (never 0)")
	userName := fs.String("user-name", "nonroot", "name of that user in /etc/passwd")
	home := fs.String("home", "/home/nonroot", "the user's home directory (created, owned by the user)")
	workdir := fs.String("workdir", "", "working directory")
	var files, dirs, envs, libs, links list
	fs.Var(&files, "file", "SRC:DST[:MODE] a host file at DST in the image (repeatable)")
	fs.Var(&dirs, "dir", "DST[:MODE] an empty directory owned by the user (repeatable)")
	fs.Var(&envs, "env", "K=V environment variable (repeatable)")
	fs.Var(&libs, "libs", "DST: add the shared libraries the file at DST needs (repeatable)")
	fs.Var(&links, "link", "DST:TARGET a symbolic link (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *ref == "":
		return errors.New("-ref is required")
	case *out == "":
		return errors.New("-o is required")
	case *entrypoint == "":
		return errors.New("-entrypoint is required")
	case *user <= 0:
		return fmt.Errorf("-user %d: the image must run as a non-root user", *user)
	}
	tag, err := name.NewTag(*ref, name.WeakValidation)
	if err != nil {
		return fmt.Errorf("-ref %q: %w", *ref, err)
	}

	entries := map[string]*entry{}
	owned := map[string]bool{}
	for _, f := range files {
		parts := strings.Split(f, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || !path.IsAbs(parts[1]) {
			return fmt.Errorf("-file %q: want SRC:DST[:MODE] with an absolute DST", f)
		}
		st, err := os.Stat(parts[0])
		if err != nil {
			return fmt.Errorf("-file %q: %w", f, err)
		}
		mode := int64(st.Mode().Perm())
		if len(parts) == 3 {
			m, err := strconv.ParseInt(parts[2], 8, 32)
			if err != nil {
				return fmt.Errorf("-file %q: MODE %q is not octal", f, parts[2])
			}
			mode = m
		}
		if st.IsDir() {
			if err := addTree(entries, parts[0], parts[1]); err != nil {
				return err
			}
			continue
		}
		entries[path.Clean(parts[1])] = &entry{src: parts[0], mode: mode}
	}
	for _, d := range dirs {
		p, m, _ := strings.Cut(d, ":")
		mode := int64(0o755)
		if m != "" {
			v, err := strconv.ParseInt(m, 8, 32)
			if err != nil {
				return fmt.Errorf("-dir %q: MODE %q is not octal", d, m)
			}
			mode = v
		}
		if !path.IsAbs(p) {
			return fmt.Errorf("-dir %q: want an absolute path", d)
		}
		entries[path.Clean(p)] = &entry{dir: true, mode: mode}
		owned[path.Clean(p)] = true
	}
	for _, l := range links {
		dst, target, ok := strings.Cut(l, ":")
		if !ok || !path.IsAbs(dst) || target == "" {
			return fmt.Errorf("-link %q: want DST:TARGET with an absolute DST", l)
		}
		entries[path.Clean(dst)] = &entry{link: target}
	}
	for _, l := range libs {
		e, ok := entries[path.Clean(l)]
		if !ok || e.src == "" {
			return fmt.Errorf("-libs %q: no -file has that destination", l)
		}
		deps, err := sharedLibraries(e.src)
		if err != nil {
			return fmt.Errorf("-libs %q: %w", l, err)
		}
		for _, d := range deps {
			if _, ok := entries[d]; !ok {
				entries[d] = &entry{src: d, mode: 0o755}
			}
		}
	}
	// Who the image runs as, for programs that ask (getpwuid).
	uid := strconv.Itoa(*user)
	entries["/etc/passwd"] = &entry{mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
		*userName + ":x:" + uid + ":" + uid + ":" + *userName + ":" + *home + ":/sbin/nologin\n")}
	entries["/etc/group"] = &entry{mode: 0o644, data: []byte("root:x:0:\n" + *userName + ":x:" + uid + ":\n")}
	entries["/etc/nsswitch.conf"] = &entry{mode: 0o644, data: []byte("passwd: files\ngroup: files\nhosts: files dns\n")}
	entries[path.Clean(*home)] = &entry{dir: true, mode: 0o755}
	owned[path.Clean(*home)] = true
	entries["/tmp"] = &entry{dir: true, mode: 0o1777}

	layerBytes, err := layerTar(entries, owned, *user)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Entrypoint = strings.Fields(*entrypoint)
	if *cmd != "" {
		cf.Config.Cmd = strings.Fields(*cmd)
	}
	cf.Config.User = uid + ":" + uid
	cf.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, envs...)
	cf.Config.WorkingDir = *workdir
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(*out, tag, img); err != nil {
		return fmt.Errorf("writing %s: %w", *out, err)
	}
	size := 0
	for _, e := range entries {
		if e.src != "" {
			if st, err := os.Stat(e.src); err == nil {
				size += int(st.Size())
			}
		}
	}
	fmt.Printf("images: %s → %s (%d files, %.1f MiB)\n", tag.String(), *out, len(entries), float64(size)/(1<<20))
	return nil
}

// addTree adds a host directory's files under dst.
func addTree(entries map[string]*entry, src, dst string) error {
	return walk(src, func(rel string, st os.FileInfo) error {
		p := path.Join(dst, rel)
		switch {
		case st.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(path.Join(src, rel))
			if err != nil {
				return err
			}
			entries[p] = &entry{link: target}
		case st.IsDir():
			entries[p] = &entry{dir: true, mode: int64(st.Mode().Perm())}
		default:
			entries[p] = &entry{src: path.Join(src, rel), mode: int64(st.Mode().Perm())}
		}
		return nil
	})
}

func walk(root string, fn func(rel string, st os.FileInfo) error) error {
	var visit func(rel string) error
	visit = func(rel string) error {
		st, err := os.Lstat(path.Join(root, rel))
		if err != nil {
			return err
		}
		if rel != "" {
			if err := fn(rel, st); err != nil {
				return err
			}
		}
		if !st.IsDir() {
			return nil
		}
		names, err := os.ReadDir(path.Join(root, rel))
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := visit(path.Join(rel, n.Name())); err != nil {
				return err
			}
		}
		return nil
	}
	return visit("")
}

// sharedLibraries is what the dynamic linker loads for an ELF file (its
// interpreter and every library, by the path it is found at), or nothing
// for a static one.
func sharedLibraries(file string) ([]string, error) {
	out, err := exec.Command("ldd", file).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %v: %s", file, err, out)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		case len(f) >= 3 && f[1] == "=>" && f[2] == "not":
			return nil, fmt.Errorf("ldd %s: %s is not found on this machine", file, f[0])
		}
	}
	return libs, sc.Err()
}

// layerTar writes the entries, parents first, with fixed times so that the
// same inputs give the same layer digest.
func layerTar(entries map[string]*entry, owned map[string]bool, uid int) ([]byte, error) {
	// Every parent directory exists.
	for p := range entries {
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = &entry{dir: true, mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for p := range entries {
		names = append(names, p)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, p := range names {
		e := entries[p]
		h := &tar.Header{Name: strings.TrimPrefix(p, "/"), Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX}
		if owned[p] {
			h.Uid, h.Gid = uid, uid
		}
		var body []byte
		switch {
		case e.dir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		case e.src != "":
			b, err := os.ReadFile(e.src)
			if err != nil {
				return nil, err
			}
			body = b
		default:
			body = e.data
		}
		if h.Typeflag == 0 {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
