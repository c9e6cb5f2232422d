package models_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/stack"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/models"
	"github.com/bulkhead-mesh/bulkhead/services/models/api/v1alpha1"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
)

// Kubernetes mode: Model objects applied to a real API server (the CRD
// of policies/crds) are registered, their Accepted and Ready conditions
// written back; an edit the API server accepts but the models service
// refuses keeps the version before in force; a deleted object disables
// its model.
func TestModelsFromTheAPIServer(t *testing.T) {
	k := testenv.NewKube(t, components.KubeOptions{CRDDirs: []string{filepath.Join("..", "..", "policies", "crds")}})
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	kc, err := client.New(k.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	s := stack.New(t)
	s.StartService("models", models.Setup(&models.Options{KubernetesModels: true, KubernetesNamespace: "default", KubeConfig: k.Config, ProbeInterval: 200 * time.Millisecond}), stack.Options{})
	c := modelsv1.NewModelsServiceClient(s.Dial("models"))
	ctx := t.Context()

	m := &v1alpha1.Model{ObjectMeta: metav1.ObjectMeta{Name: "tiny", Namespace: "default"}, Spec: v1alpha1.ModelSpec{
		Engine: "builtin", Limits: v1alpha1.Limits{ContextLength: 4096, MaxOutputTokens: 256}, Prices: v1alpha1.Prices{Output: "0.5"},
		Fallbacks: []string{"deepseek-v4-flash"},
	}}
	if err := kc.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	conditions := func(want string) error {
		var got v1alpha1.Model
		if err := kc.Get(ctx, client.ObjectKeyFromObject(m), &got); err != nil {
			return err
		}
		var parts []string
		for _, c := range got.Status.Conditions {
			parts = append(parts, fmt.Sprintf("%s=%s@%d: %s", c.Type, c.Status, c.ObservedGeneration, c.Message))
		}
		if s := strings.Join(parts, "; "); !strings.Contains(s, want) {
			return fmt.Errorf("conditions %q; want %q", s, want)
		}
		return nil
	}
	testenv.Eventually(t, 20*time.Second, "tiny accepted and ready", func() error {
		return conditions("Accepted=True@1: valid and in force; Ready=True@1: served by the builtin engine")
	})
	got, err := c.GetModel(ctx, &modelsv1.GetModelRequest{Name: "tiny"}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	if got.Model.Source != "config" || got.Model.MaxOutputTokens != 256 || got.Model.CompletionPriceMicrosPerMtok != 500000 {
		t.Fatalf("registered %v", got.Model)
	}
	version := got.Model.Version

	// The API server takes it (the CRD cannot say), the models service
	// does not: the model names itself as its fallback.
	if err := kc.Get(ctx, client.ObjectKeyFromObject(m), m); err != nil {
		t.Fatal(err)
	}
	m.Spec.Fallbacks = []string{"tiny"}
	if err := kc.Update(ctx, m); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the edit refused", func() error {
		return conditions(fmt.Sprintf("Accepted=False@2: spec.fallbacks[0]: names the model itself (version %d, accepted before, stays in force)", version))
	})
	if r, err := c.Resolve(ctx, &modelsv1.ResolveRequest{Name: "tiny"}); err != nil || r.Model.Version != version {
		t.Fatalf("after a refused edit: %v %v", r, err)
	}
	// What the CRD checks, the API server refuses at once.
	bad := &v1alpha1.Model{}
	if err := kc.Get(ctx, client.ObjectKeyFromObject(m), bad); err != nil {
		t.Fatal(err)
	}
	bad.Spec.Engine = "tpu"
	if err := kc.Update(ctx, bad); err == nil || !strings.Contains(err.Error(), "spec.engine") {
		t.Fatalf("engine tpu: %v", err)
	}

	if err := kc.Delete(ctx, m); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "tiny disabled", func() error {
		res, err := c.ListModels(ctx, &modelsv1.ListModelsRequest{IncludeUnavailable: true})
		if err != nil {
			return err
		}
		for _, x := range res.Models {
			if x.Name == "tiny" {
				return testenv.Until(x.State == modelsv1.ModelState_MODEL_STATE_DISABLED, "state %v", x.State)
			}
		}
		return fmt.Errorf("tiny is gone from the registry")
	})
}
