package models

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bulkhead-mesh/bulkhead/services/models/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/services/models/modelconfig"
	modelsv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/models/v1"
)

// serviceAccountNamespace holds the pod's namespace in a cluster.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// kubeSource is Kubernetes mode: the Model objects of one namespace, read
// through an informer, their conditions written back (status
// subresource). The API server has applied the CRD's schema; the rest of
// the validation is the same as in universal mode.
type kubeSource struct {
	namespace string
	cache     cache.Cache
	client    client.Client
	log       *slog.Logger
}

func newKubeSource(ctx context.Context, cfg *rest.Config, namespace string, log *slog.Logger) (*kubeSource, error) {
	if cfg == nil {
		var err error
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("models: --kubernetes-models: %w", err)
		}
	}
	if namespace == "" {
		namespace = os.Getenv("POD_NAMESPACE")
	}
	if namespace == "" {
		b, err := os.ReadFile(serviceAccountNamespace)
		if err != nil {
			return nil, fmt.Errorf("models: --kubernetes-namespace is not set and the pod's namespace is unknown: %w", err)
		}
		namespace = strings.TrimSpace(string(b))
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, DefaultNamespaces: map[string]cache.Config{namespace: {}}})
	if err != nil {
		return nil, fmt.Errorf("models: kubernetes: %w", err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("models: kubernetes: %w", err)
	}
	return &kubeSource{namespace: namespace, cache: c, client: cl, log: log}, nil
}

func (k *kubeSource) watch(ctx context.Context, changed func()) error {
	inf, err := k.cache.GetInformer(ctx, &v1alpha1.Model{})
	if err != nil {
		return fmt.Errorf("models: informer of Model: %w", err)
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { changed() },
		UpdateFunc: func(any, any) { changed() },
		DeleteFunc: func(any) { changed() },
	}); err != nil {
		return err
	}
	go func() {
		if err := k.cache.Start(ctx); err != nil && ctx.Err() == nil {
			k.log.Error("models: the Model informer stopped", "error", err)
		}
	}()
	if !k.cache.WaitForCacheSync(ctx) {
		return fmt.Errorf("models: the Model informer of namespace %s did not sync (is the CRD installed? policies/crds/models.bulkhead.dev_models.yaml; may the service account list models?)", k.namespace)
	}
	return nil
}

func (k *kubeSource) origin(name string) string { return "kubernetes " + k.namespace + "/" + name }

func (k *kubeSource) load(ctx context.Context) *modelconfig.Set {
	var list v1alpha1.ModelList
	if err := k.cache.List(ctx, &list, client.InNamespace(k.namespace)); err != nil {
		return &modelconfig.Set{Errs: []error{fmt.Errorf("list Model objects: %w", err)}}
	}
	set := &modelconfig.Set{}
	for i := range list.Items {
		m := list.Items[i].DeepCopy()
		set.Objects = append(set.Objects, modelconfig.FromObject(k.origin(m.Name), m))
	}
	set.Sort()
	return set
}

// report writes each object's Accepted and Ready conditions, observed at
// the generation that was read, when they changed.
func (k *kubeSource) report(ctx context.Context, st *modelsv1.ListModelConfigsResponse) {
	for _, o := range st.Configs {
		var m v1alpha1.Model
		if err := k.cache.Get(ctx, client.ObjectKey{Namespace: k.namespace, Name: o.Name}, &m); err != nil {
			continue // gone since
		}
		if m.Generation != o.Generation {
			continue // a newer version is on its way
		}
		before := m.DeepCopy()
		accepted := metav1.Condition{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", Message: o.AcceptedMessage, ObservedGeneration: m.Generation}
		if !o.Accepted {
			accepted.Status, accepted.Reason = metav1.ConditionFalse, "Invalid"
		}
		ready := metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "BackendAnswered", Message: o.ReadyMessage, ObservedGeneration: m.Generation}
		switch {
		case !o.Accepted && o.Version == 0:
			ready.Status, ready.Reason = metav1.ConditionFalse, "NotAccepted"
		case !o.Ready:
			ready.Status, ready.Reason = metav1.ConditionFalse, "NoBackendAnswered"
		}
		meta.SetStatusCondition(&m.Status.Conditions, accepted)
		meta.SetStatusCondition(&m.Status.Conditions, ready)
		if equalConditions(before.Status.Conditions, m.Status.Conditions) {
			continue
		}
		if err := k.client.Status().Update(ctx, &m); err != nil && ctx.Err() == nil {
			k.log.Warn("writing the status of a Model", "model", o.Name, "error", err)
		}
	}
}

func equalConditions(a, b []metav1.Condition) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Type != y.Type || x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message || x.ObservedGeneration != y.ObservedGeneration {
			return false
		}
	}
	return true
}
