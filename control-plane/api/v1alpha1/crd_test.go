package v1alpha1_test

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/bulkhead-mesh/bulkhead/control-plane/internal/admissioncases"
	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// The generated CRDs, installed in a real kube-apiserver, accept the valid
// policies and refuse each invalid one at admission with a message naming
// the field and the reason.

const crdDir = "../../../policies/crds"

var resources = map[string]string{
	"BackendPolicy":   "backendpolicies",
	"RateLimitPolicy": "ratelimitpolicies",
	"SecurityPolicy":  "securitypolicies",
}

func TestCRDAdmission(t *testing.T) {
	t.Parallel()
	k := testenv.NewKube(t, components.KubeOptions{CRDDirs: []string{crdDir}})
	dyn, err := dynamic.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range admissioncases.Load(t) {
		t.Run(tc.Name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: tc.Object}
			obj.SetAPIVersion("mesh.bulkhead.dev/v1alpha1")
			obj.SetNamespace("default")
			obj.SetName(strings.ToLower(obj.GetKind()) + "-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26))
			gvr := schema.GroupVersionResource{Group: "mesh.bulkhead.dev", Version: "v1alpha1", Resource: resources[obj.GetKind()]}
			_, err := dyn.Resource(gvr).Namespace("default").Create(t.Context(), obj, metav1.CreateOptions{})
			if len(tc.WantErr) == 0 {
				if err != nil {
					t.Fatalf("valid %s refused: %v", obj.GetKind(), err)
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid %s accepted; want an error containing %q", obj.GetKind(), tc.WantErr)
			}
			for _, want := range tc.WantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}
