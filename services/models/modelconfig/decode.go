// Package modelconfig reads Model objects (services/models/api/v1alpha1)
// from YAML, validates them with errors that name the field, and turns an
// accepted one into the registry's model. The models service applies what
// it reads from a watched directory (universal mode); `bulkhead models
// apply` validates with it before writing a file.
package modelconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/bulkhead-mesh/bulkhead/internal/yamldoc"
	"github.com/bulkhead-mesh/bulkhead/services/models/api/v1alpha1"
)

// APIVersion and Kind of the objects read.
const (
	APIVersion = "models.bulkhead.dev/v1alpha1"
	Kind       = "Model"
)

// Object is one Model document as read.
type Object struct {
	// Origin is file:line of the document (universal mode).
	Origin string
	// Name is metadata.name when it could be read.
	Name  string
	Model *v1alpha1.Model
	// YAML is the document's text.
	YAML string
	// Errs are why the object is refused: a document that does not decode
	// or does not validate (each names the field). An object with errors
	// keeps its last accepted version in force.
	Errs []error
}

// Accepted says whether the object can be applied.
func (o *Object) Accepted() bool { return len(o.Errs) == 0 && o.Model != nil }

// Message is the Accepted condition's message.
func (o *Object) Message() string {
	if o.Accepted() {
		return "valid and in force"
	}
	msgs := make([]string, len(o.Errs))
	for i, e := range o.Errs {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Set is everything read from the configuration.
type Set struct {
	// Objects by name, sorted; a document without a usable name is in Errs.
	Objects []*Object
	// Errs belong to no object: a file that cannot be read, a document
	// that is not YAML or names no model, a name defined twice.
	Errs []error
}

// LoadDirs reads every *.yaml and *.yml file under the directories
// (skipping names that start with "."); a directory that does not exist
// is empty.
func LoadDirs(dirs ...string) *Set {
	set := &Set{}
	seen := map[string]*Object{}
	for _, dir := range dirs {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			continue
		}
		err := yamldoc.Walk(dir, func(path string, data []byte) error {
			objs, errs := Decode(path, data)
			set.Errs = append(set.Errs, errs...)
			for _, o := range objs {
				if prev, dup := seen[o.Name]; dup {
					set.Errs = append(set.Errs, fmt.Errorf("%s: Model %s: defined twice; first at %s", o.Origin, o.Name, prev.Origin))
					continue
				}
				seen[o.Name] = o
				set.Objects = append(set.Objects, o)
			}
			return nil
		})
		if err != nil {
			set.Errs = append(set.Errs, err)
		}
	}
	set.Sort()
	return set
}

// Sort orders the objects by name.
func (s *Set) Sort() {
	sort.Slice(s.Objects, func(i, j int) bool { return s.Objects[i].Name < s.Objects[j].Name })
}

// FromObject is an object read from the API server (Kubernetes mode):
// its schema already applied there, validated here like a file's.
func FromObject(origin string, m *v1alpha1.Model) *Object {
	shown := m.DeepCopy()
	shown.ManagedFields = nil
	shown.Status = v1alpha1.ModelStatus{}
	text, _ := yaml.Marshal(shown)
	return &Object{Origin: origin, Name: m.Name, Model: m, YAML: string(text), Errs: Validate(m)}
}

// Decode reads the Model documents of one file, validating each. A
// document that names no model is an error of the file (second result).
func Decode(file string, data []byte) ([]*Object, []error) {
	var objs []*Object
	var errs []error
	for _, doc := range yamldoc.Split(data) {
		origin := fmt.Sprintf("%s:%d", file, doc.Line)
		if yamldoc.Blank(doc.Body) {
			continue
		}
		o, err := decodeOne(origin, doc.Body)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", origin, err))
			continue
		}
		objs = append(objs, o)
	}
	return objs, errs
}

func decodeOne(origin string, body []byte) (*Object, error) {
	js, err := yaml.YAMLToJSON(body)
	if err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	if head.APIVersion != APIVersion || head.Kind != Kind {
		return nil, fmt.Errorf("apiVersion/kind %q/%q: a models directory holds %s %s objects only", head.APIVersion, head.Kind, APIVersion, Kind)
	}
	if head.Metadata.Name == "" {
		return nil, errors.New("metadata.name is required (a Model without a name)")
	}
	o := &Object{Origin: origin, Name: head.Metadata.Name, YAML: string(body)}
	m := &v1alpha1.Model{}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		o.Errs = []error{yamldoc.ExplainStrict(body, &v1alpha1.Model{}, err)}
		return o, nil
	}
	o.Model = m
	o.Errs = Validate(m)
	return o, nil
}
