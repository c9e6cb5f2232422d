package kubernetes_test

import (
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider/kubernetes"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// CRDDirs are the CRDs a cluster needs for the control plane: ours and the
// Gateway API's (generated from the pinned module).
func crdDirs() []string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	return []string{filepath.Join(root, "policies", "crds"), filepath.Join(root, "policies", "crds-gateway-api")}
}

func create(t *testing.T, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := c.Create(t.Context(), o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

func meta(ns, name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }

func inNamespace[T client.Object](list []T, ns string) int {
	n := 0
	for _, o := range list {
		if o.GetNamespace() == ns {
			n++
		}
	}
	return n
}

// latest follows a provider's updates, keeping the newest.
type latest struct{ ch chan provider.Update }

func (l latest) wait(t *testing.T, what string, ok func(*resource.Resources) error) *resource.Resources {
	t.Helper()
	var res *resource.Resources
	testenv.Eventually(t, 30*time.Second, what, func() error {
		for {
			select {
			case u := <-l.ch:
				if u.Err != nil {
					return u.Err
				}
				res = u.Resources
				continue
			default:
			}
			break
		}
		if res == nil {
			return testenv.Until(false, "no snapshot yet")
		}
		return ok(res)
	})
	return res
}

func TestProviderFollowsTheAPIServer(t *testing.T) {
	k := testenv.NewKube(t, components.KubeOptions{CRDDirs: crdDirs()})
	scheme, err := kubernetes.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(k.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	create(t, c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}})
	port := gwapiv1.PortNumber(8080)
	h2c := "kubernetes.io/h2c"
	create(t, c,
		&gwapiv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "bulkhead"}, Spec: gwapiv1.GatewayClassSpec{ControllerName: kubernetes.ControllerName}},
		&gwapiv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "theirs"}, Spec: gwapiv1.GatewayClassSpec{ControllerName: "example.com/other"}},
		&gwapiv1.Gateway{ObjectMeta: meta("apps", "ai"), Spec: gwapiv1.GatewaySpec{GatewayClassName: "bulkhead", Listeners: []gwapiv1.Listener{{Name: "http", Protocol: gwapiv1.HTTPProtocolType, Port: port}}}},
		&gwapiv1.Gateway{ObjectMeta: meta("apps", "elsewhere"), Spec: gwapiv1.GatewaySpec{GatewayClassName: "theirs", Listeners: []gwapiv1.Listener{{Name: "http", Protocol: gwapiv1.HTTPProtocolType, Port: port}}}},
		&corev1.Service{ObjectMeta: meta("apps", "inference"), Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "grpc", Port: 9000, AppProtocol: &h2c}}}},
		&corev1.Service{ObjectMeta: meta("other", "stranger"), Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "grpc", Port: 9000}}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "inference-1", Labels: map[string]string{discoveryv1.LabelServiceName: "inference"}},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}}},
		&v1alpha1.BackendPolicy{ObjectMeta: meta("apps", "inference"), Spec: v1alpha1.BackendPolicySpec{
			TargetRefs: []v1alpha1.PolicyTargetReference{{LocalPolicyTargetReference: gwapiv1.LocalPolicyTargetReference{Group: "", Kind: "Service", Name: "inference"}}},
			Retry:      &v1alpha1.Retry{NumRetries: 2, RetryOn: []v1alpha1.RetryOn{"unavailable"}},
		}},
	)

	// The API server refuses what breaks a CRD rule, naming the field.
	bad := &v1alpha1.BackendPolicy{ObjectMeta: meta("apps", "bad"), Spec: v1alpha1.BackendPolicySpec{
		TargetRefs: []v1alpha1.PolicyTargetReference{{LocalPolicyTargetReference: gwapiv1.LocalPolicyTargetReference{Group: "", Kind: "Service", Name: "inference"}}},
		Retry:      &v1alpha1.Retry{NumRetries: -1, RetryOn: []v1alpha1.RetryOn{"unavailable"}},
	}}
	if err := c.Create(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "spec.retry.numRetries") {
		t.Fatalf("a negative numRetries: %v; want it refused at admission, naming the field", err)
	}

	all := latest{ch: make(chan provider.Update, 64)}
	go (&kubernetes.Provider{Config: k.Config, Log: slog.New(slog.DiscardHandler)}).Run(t.Context(), all.ch)
	res := all.wait(t, "the first snapshot", func(r *resource.Resources) error {
		return testenv.Until(len(r.BackendPolicies) == 1 && inNamespace(r.EndpointSlices, "apps") == 1, "%d policies, %d slices in apps", len(r.BackendPolicies), inNamespace(r.EndpointSlices, "apps"))
	})
	// Only our GatewayClass and its Gateways; the other is foreign.
	if len(res.GatewayClasses) != 1 || len(res.Gateways) != 1 || res.Gateways[0].Name != "ai" ||
		len(res.ForeignGateways) != 1 || res.ForeignGateways[0].Name != "elsewhere" {
		t.Fatalf("classes %d, gateways %v, foreign %v; want ours only", len(res.GatewayClasses), res.Gateways, res.ForeignGateways)
	}
	if inNamespace(res.Services, "apps") != 1 || inNamespace(res.Services, "other") != 1 {
		t.Fatalf("Services %d in apps, %d in other; want both namespaces' (no --namespace)", inNamespace(res.Services, "apps"), inNamespace(res.Services, "other"))
	}
	key := resource.Key{Kind: "BackendPolicy", Namespace: "apps", Name: "inference"}
	if o := res.Origin(key); o.String() != "kubernetes" || o.Generation != 1 {
		t.Fatalf("origin %+v; want kubernetes, generation 1", o)
	}

	// An edit is a new snapshot, at the new generation.
	var bp v1alpha1.BackendPolicy
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: "apps", Name: "inference"}, &bp); err != nil {
		t.Fatal(err)
	}
	bp.Spec.Retry.NumRetries = 4
	if err := c.Update(t.Context(), &bp); err != nil {
		t.Fatal(err)
	}
	res = all.wait(t, "the edit", func(r *resource.Resources) error {
		return testenv.Until(len(r.BackendPolicies) == 1 && r.BackendPolicies[0].Spec.Retry.NumRetries == 4, "not yet")
	})
	if g := res.Origin(key).Generation; g != 2 {
		t.Fatalf("generation %d after the edit; want 2", g)
	}
	// A deletion too.
	if err := c.Delete(t.Context(), &bp); err != nil {
		t.Fatal(err)
	}
	all.wait(t, "the deletion", func(r *resource.Resources) error {
		return testenv.Until(len(r.BackendPolicies) == 0, "still %d", len(r.BackendPolicies))
	})

	// --namespace narrows what is watched.
	apps := latest{ch: make(chan provider.Update, 64)}
	go (&kubernetes.Provider{Config: k.Config, Namespaces: []string{"apps"}, Log: slog.New(slog.DiscardHandler)}).Run(t.Context(), apps.ch)
	apps.wait(t, "the apps namespace only", func(r *resource.Resources) error {
		for _, s := range r.Services {
			if s.Namespace != "apps" {
				return testenv.Until(false, "Service %s/%s of another namespace", s.Namespace, s.Name)
			}
		}
		return testenv.Until(len(r.Services) == 1 && len(r.GatewayClasses) == 1, "%d Services, %d classes", len(r.Services), len(r.GatewayClasses))
	})
}
