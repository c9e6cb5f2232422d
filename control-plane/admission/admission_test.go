package admission_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/admission"
	"github.com/bulkhead-mesh/bulkhead/control-plane/internal/admissioncases"
)

// The in-process validator accepts and refuses exactly what the real API
// server does (the same cases run against kube-apiserver in
// api/v1alpha1/crd_test.go).
func TestSameVerdictsAsTheAPIServer(t *testing.T) {
	for _, tc := range admissioncases.Load(t) {
		t.Run(tc.Name, func(t *testing.T) {
			obj := tc.Object
			obj["apiVersion"] = "mesh.bulkhead.dev/v1alpha1"
			obj["metadata"] = map[string]any{"name": "p", "namespace": "default"}
			kind, _ := obj["kind"].(string)
			if !admission.Handles("mesh.bulkhead.dev/v1alpha1", kind) {
				t.Fatalf("kind %s not handled", kind)
			}
			errs := admission.Validate(t.Context(), "mesh.bulkhead.dev/v1alpha1", kind, obj)
			if len(tc.WantErr) == 0 {
				for _, e := range errs {
					t.Errorf("valid %s refused: %v", kind, e)
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("invalid %s accepted; want an error containing %q", kind, tc.WantErr)
			}
			var all []string
			for _, e := range errs {
				all = append(all, e.Error())
			}
			msg := strings.Join(all, "; ")
			for _, want := range tc.WantErr {
				if !strings.Contains(msg, want) {
					t.Errorf("errors %q do not contain %q", msg, want)
				}
			}
		})
	}
}
