// Package admission validates policy objects the way the Kubernetes API
// server does at admission: with the OpenAPI schema and the CEL rules of
// the generated CRDs (policies/crds), run in process. Universal mode has no
// API server in front of the files; this gives its users the same checks
// and the same messages.
package admission

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/bulkhead-mesh/bulkhead/policies/crds"
)

// kindValidator holds the compiled rules of one kind and version.
type kindValidator struct {
	schema     validation.SchemaValidator
	structural *structuralschema.Structural
	cel        *cel.Validator
}

var (
	once       sync.Once
	validators map[string]*kindValidator // by "group/version/Kind"
	loadErr    error
)

func load() {
	validators = map[string]*kindValidator{}
	files, err := fs.Glob(crds.FS, "*.yaml")
	if err != nil {
		loadErr = err
		return
	}
	for _, f := range files {
		data, err := crds.FS.ReadFile(f)
		if err != nil {
			loadErr = err
			return
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &crd); err != nil {
			loadErr = fmt.Errorf("admission: %s: %w", f, err)
			return
		}
		for _, v := range crd.Spec.Versions {
			if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			var internal apiextensions.JSONSchemaProps
			if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
				loadErr = fmt.Errorf("admission: %s %s: %w", crd.Name, v.Name, err)
				return
			}
			sv, _, err := validation.NewSchemaValidator(&internal)
			if err != nil {
				loadErr = fmt.Errorf("admission: %s %s: %w", crd.Name, v.Name, err)
				return
			}
			st, err := structuralschema.NewStructural(&internal)
			if err != nil {
				loadErr = fmt.Errorf("admission: %s %s: %w", crd.Name, v.Name, err)
				return
			}
			validators[crd.Spec.Group+"/"+v.Name+"/"+crd.Spec.Names.Kind] = &kindValidator{
				schema:     sv,
				structural: st,
				cel:        cel.NewValidator(st, true, celconfig.PerCallLimit),
			}
		}
	}
}

// Handles reports whether apiVersion/kind is a kind this package validates.
func Handles(apiVersion, kind string) bool {
	once.Do(load)
	_, ok := validators[apiVersion+"/"+kind]
	return ok
}

// Validate checks an object (decoded JSON) of a policy kind against its
// CRD's schema and CEL rules. Each error names the field ("spec.retry.
// numRetries: Invalid value: 50: must be less than or equal to 10").
func Validate(ctx context.Context, apiVersion, kind string, obj map[string]any) []error {
	once.Do(load)
	if loadErr != nil {
		return []error{loadErr}
	}
	v, ok := validators[apiVersion+"/"+kind]
	if !ok {
		return nil
	}
	obj = normalize(obj).(map[string]any)
	errs := validation.ValidateCustomResource(nil, obj, v.schema)
	if len(errs) == 0 && v.cel != nil {
		celErrs, _ := v.cel.Validate(ctx, nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		out = append(out, fmt.Errorf("%s", strings.TrimPrefix(e.Error(), "<nil>: ")))
	}
	return out
}

// normalize returns a copy of a decoded JSON value with integral numbers as
// int64, as the API server decodes them (CEL tells int from double).
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = normalize(e)
		}
		return out
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int64(t)
		}
		return t
	default:
		return v
	}
}
