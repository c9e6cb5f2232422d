// Package yamldoc reads Kubernetes-style YAML files the way kubectl does:
// a stream of documents separated by "---" lines, each remembered by its
// first line so that errors can point at it, decoded strictly with unknown
// fields named by their full path. The control plane's policies and the
// models service's Model objects are read with it.
package yamldoc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// ExplainStrict turns the decoder's error into one that names the
// field by its full path ("unknown field spec.retri", not "retri"): the
// document is decoded leniently, encoded again, and the keys the typed
// object dropped are the unknown ones.
func ExplainStrict(body []byte, obj any, strictErr error) error {
	msg := strictErr.Error()
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	field, ok := strings.CutPrefix(msg, "unknown field ")
	if !ok {
		return errors.New(msg)
	}
	field = strings.Trim(field, `"`)
	var original map[string]any
	if err := yaml.Unmarshal(body, &original); err != nil {
		return errors.New(msg)
	}
	if err := yaml.Unmarshal(body, obj); err != nil {
		return errors.New(msg)
	}
	rt, err := json.Marshal(obj)
	if err != nil {
		return errors.New(msg)
	}
	var roundTrip map[string]any
	if err := json.Unmarshal(rt, &roundTrip); err != nil {
		return errors.New(msg)
	}
	if paths := droppedKeys(original, roundTrip, "", field); len(paths) > 0 {
		return fmt.Errorf("unknown field %q", paths[0])
	}
	return errors.New(msg)
}

// droppedKeys lists the paths of keys named field that are in orig and not
// in kept.
func droppedKeys(orig, kept any, prefix, field string) []string {
	var out []string
	switch o := orig.(type) {
	case map[string]any:
		k, _ := kept.(map[string]any)
		keys := make([]string, 0, len(o))
		for key := range o {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			path := key
			if prefix != "" {
				path = prefix + "." + key
			}
			kv, present := k[key]
			if !present {
				if key == field {
					out = append(out, path)
				}
				continue
			}
			out = append(out, droppedKeys(o[key], kv, path, field)...)
		}
	case []any:
		k, _ := kept.([]any)
		for i, v := range o {
			if i < len(k) {
				out = append(out, droppedKeys(v, k[i], fmt.Sprintf("%s[%d]", prefix, i), field)...)
			}
		}
	}
	return out
}

// Document is one document of a YAML stream.
type Document struct {
	// Line is the first line of its content (1-based).
	Line int
	Body []byte
}

// Split splits a multi-document YAML stream on "---" lines,
// remembering the first line of each document.
func Split(data []byte) []Document {
	var docs []Document
	var cur bytes.Buffer
	start := 1
	line := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line++
		text := sc.Text()
		if isSeparator(text) {
			if cur.Len() > 0 {
				docs = append(docs, Document{Line: start, Body: append([]byte(nil), cur.Bytes()...)})
			}
			cur.Reset()
			start = line + 1
			continue
		}
		if cur.Len() == 0 {
			// The document starts at its first line of content: blank and
			// comment lines before it are not part of what errors point at.
			if t := strings.TrimSpace(text); t == "" || strings.HasPrefix(t, "#") {
				start = line + 1
				continue
			}
		}
		cur.WriteString(text)
		cur.WriteByte('\n')
	}
	if cur.Len() > 0 {
		docs = append(docs, Document{Line: start, Body: cur.Bytes()})
	}
	return docs
}

func isSeparator(line string) bool {
	if !strings.HasPrefix(line, "---") {
		return false
	}
	rest := strings.TrimSpace(line[3:])
	return rest == "" || strings.HasPrefix(rest, "#")
}

// Blank says whether a document holds nothing but comments and blank lines.
func Blank(body []byte) bool { return len(bytes.TrimSpace(stripComments(body))) == 0 }

func stripComments(body []byte) []byte {
	var out bytes.Buffer
	for _, l := range bytes.Split(body, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out.Write(l)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

// Walk calls fn with the path and content of every *.yaml and *.yml file
// under dir, skipping the files and directories whose name starts with
// "." (editor swap files, .git). Every problem (a file that cannot be
// read, an error of fn) is collected and returned joined; the walk goes on.
func Walk(dir string, fn func(path string, data []byte) error) error {
	var errs []error
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isYAML(path) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if err := fn(path, data); err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func isYAML(path string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	return ext == ".yaml" || ext == ".yml"
}
