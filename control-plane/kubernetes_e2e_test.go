package controlplane_test

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/kubestatus"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider/kubernetes"
	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// startKube starts an API server with the control plane's CRDs (and
// kube-controller-manager running controllers, if any), and a client of it.
func startKube(t testing.TB, controllers ...string) (*components.Kube, client.Client) {
	t.Helper()
	k := testenv.NewKube(t, components.KubeOptions{
		CRDDirs:     []string{filepath.Join("..", "policies", "crds"), filepath.Join("..", "policies", "crds-gateway-api")},
		Controllers: controllers,
	})
	kc, err := kubernetes.NewClient(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	return k, kc
}

// kubeOptions are the options of a Kubernetes-mode control plane as the
// tests run it: watching the API server as cfg, writing status with kc
// every 100 ms, on free loopback ports.
func kubeOptions(t testing.TB, cfg *rest.Config, kc client.Client) controlplane.Options {
	return controlplane.Options{
		Provider:   &kubernetes.Provider{Config: cfg, Log: slog.New(slog.DiscardHandler)},
		XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0",
		StatusWriter: &kubestatus.Writer{Client: kc, Log: slog.New(slog.DiscardHandler)}, StatusInterval: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// startControlPlane starts a control plane that stops with the test.
func startControlPlane(t testing.TB, opts controlplane.Options) *controlplane.ControlPlane {
	t.Helper()
	cp, err := controlplane.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Stop() })
	return cp
}

// echoRetryPolicy is the BackendPolicy default/echo: two retries on
// UNAVAILABLE for the Service target.
func echoRetryPolicy(target string) *v1alpha1.BackendPolicy {
	return &v1alpha1.BackendPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "echo"}, Spec: v1alpha1.BackendPolicySpec{
		TargetRefs: []v1alpha1.PolicyTargetReference{{LocalPolicyTargetReference: gwapiv1.LocalPolicyTargetReference{Group: "", Kind: "Service", Name: gwapiv1.ObjectName(target)}}},
		Retry:      &v1alpha1.Retry{NumRetries: 2, RetryOn: []v1alpha1.RetryOn{"unavailable"}},
	}}
}

// Kubernetes mode end to end: objects written to a real API server drive
// live proxyless traffic through the same pipeline as universal mode; a
// retry added to a BackendPolicy with the API recovers the calls a flaky
// backend fails.
func TestKubernetesModeDrivesLiveTraffic(t *testing.T) {
	k, kc := startKube(t)

	// A flaky backend on an address an EndpointSlice may carry.
	b := startBackendOn(t, "flaky", testenv.HostIP(t).String())
	b.failEvery.Store(2)

	opts := kubeOptions(t, k.Config, kc)
	opts.StatusWriter = nil
	cp := startControlPlane(t, opts)
	m := &mesh{t: t, cp: cp}

	createEcho(t, kc, b)
	c := m.client("echo.default:9000")
	testenv.Eventually(t, 30*time.Second, "calls reach the backend, half of them failing", func() error {
		got := outcomes(t, c, 20)
		return testenv.Until(got["backend:flaky"] > 0 && got["Unavailable"] > 0, "20 calls: %v", got)
	})

	// The SRE adds a retry.
	if err := kc.Create(t.Context(), echoRetryPolicy("echo")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "every call recovered by the retry", func() error {
		got := outcomes(t, c, 20)
		return testenv.Until(got["backend:flaky"] == 20, "20 calls: %v", got)
	})
	// Its status, as bulkhead status reads it, observed at generation 1.
	rep, _ := cp.Status()
	for _, o := range rep.Objects {
		if o.Kind == "BackendPolicy" && o.Name == "echo" {
			if o.ObservedGeneration != 1 || o.Origin != "kubernetes" || o.Conditions[0].Status != "True" {
				t.Fatalf("status %+v", o)
			}
			return
		}
	}
	t.Fatalf("no status for the BackendPolicy: %+v", rep.Objects)
}

// createEcho creates the Service echo.default:9000 and an EndpointSlice
// whose one ready endpoint is b, as the API writes them.
func createEcho(t *testing.T, kc client.Client, b *backend) {
	t.Helper()
	h2c, port, name := "kubernetes.io/h2c", int32(b.addr.Port), "grpc"
	ready := true
	for _, o := range []client.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "echo"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "grpc", Port: 9000, AppProtocol: &h2c}}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "echo-1", Labels: map[string]string{discoveryv1.LabelServiceName: "echo"}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{b.addr.IP.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}}},
	} {
		if err := kc.Create(t.Context(), o); err != nil {
			t.Fatal(err)
		}
	}
}

// condition returns the condition of that type, or a zero one.
func condOf(conds []metav1.Condition, typ string) metav1.Condition {
	for _, c := range conds {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

// Status is written back to the objects, as kubectl shows it: a policy's
// GEP-713 ancestors, a route's parents, a Gateway's conditions and its
// listeners' attached routes, each with observedGeneration; Programmed
// follows the proxies the object reaches, a NACK's text included; an
// unchanged report writes nothing.
func TestKubernetesStatusWriteBack(t *testing.T) {
	k, kc := startKube(t)
	opts := kubeOptions(t, k.Config, kc)
	writer := opts.StatusWriter
	cp := startControlPlane(t, opts)
	m := &mesh{t: t, cp: cp}

	h2c, port := "kubernetes.io/h2c", gwapiv1.PortNumber(8080)
	for _, o := range []client.Object{
		&gwapiv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "bulkhead"}, Spec: gwapiv1.GatewayClassSpec{ControllerName: kubernetes.ControllerName}},
		&gwapiv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ai"}, Spec: gwapiv1.GatewaySpec{GatewayClassName: "bulkhead", Listeners: []gwapiv1.Listener{{Name: "http", Protocol: gwapiv1.HTTPProtocolType, Port: port}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "echo"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "grpc", Port: 9000, AppProtocol: &h2c}}}},
		&gwapiv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "chat"}, Spec: gwapiv1.HTTPRouteSpec{
			CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{Name: "ai"}}},
			Rules:           []gwapiv1.HTTPRouteRule{{BackendRefs: []gwapiv1.HTTPBackendRef{{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{Name: "missing", Port: &port}}}}}},
		}},
		echoRetryPolicy("echo"),
	} {
		if err := kc.Create(t.Context(), o); err != nil {
			t.Fatal(err)
		}
	}
	// A proxyless client connects and ACKs: the BackendPolicy (every
	// client's) is programmed; the Gateway, with no Envoy, is not.
	watchADS(t, m, "echo.default:9000")
	get := func(obj client.Object, name string) {
		t.Helper()
		if err := kc.Get(t.Context(), client.ObjectKey{Namespace: "default", Name: name}, obj); err != nil {
			t.Fatal(err)
		}
	}
	var bp v1alpha1.BackendPolicy
	testenv.Eventually(t, 30*time.Second, "the BackendPolicy's ancestors", func() error {
		get(&bp, "echo")
		if len(bp.Status.Ancestors) != 1 {
			return testenv.Until(false, "ancestors %+v", bp.Status.Ancestors)
		}
		a := bp.Status.Ancestors[0]
		acc, prog := condOf(a.Conditions, "Accepted"), condOf(a.Conditions, "Programmed")
		return testenv.Until(a.ControllerName == kubernetes.ControllerName && string(a.AncestorRef.Name) == "echo" &&
			acc.Status == "True" && prog.Status == "True" && acc.ObservedGeneration == bp.Generation, "ancestor %+v", a)
	})
	var route gwapiv1.HTTPRoute
	testenv.Eventually(t, 30*time.Second, "the route's parent status", func() error {
		get(&route, "chat")
		if len(route.Status.Parents) != 1 {
			return testenv.Until(false, "parents %+v", route.Status.Parents)
		}
		rr := condOf(route.Status.Parents[0].Conditions, "ResolvedRefs")
		return testenv.Until(rr.Status == "False" && rr.Reason == "BackendNotFound" && strings.Contains(rr.Message, "Service default/missing port 8080 not found"), "ResolvedRefs %+v", rr)
	})
	var gw gwapiv1.Gateway
	testenv.Eventually(t, 30*time.Second, "the Gateway's status", func() error {
		get(&gw, "ai")
		prog := condOf(gw.Status.Conditions, "Programmed")
		if len(gw.Status.Listeners) != 1 {
			return testenv.Until(false, "listeners %+v", gw.Status.Listeners)
		}
		return testenv.Until(condOf(gw.Status.Conditions, "Accepted").Status == "True" && prog.Status == "False" && prog.Reason == "NoProxyConnected" &&
			strings.Contains(prog.Message, "Gateway default/ai") && gw.Status.Listeners[0].AttachedRoutes == 1, "conditions %+v, listeners %+v", gw.Status.Conditions, gw.Status.Listeners)
	})
	var gc gwapiv1.GatewayClass
	if err := kc.Get(t.Context(), client.ObjectKey{Name: "bulkhead"}, &gc); err != nil || condOf(gc.Status.Conditions, "Accepted").Status != "True" {
		t.Fatalf("GatewayClass status %+v (%v)", gc.Status, err)
	}

	// A client that NACKs: the policy's Programmed says so, with its words.
	rejected := m.nack("picky-node", resourcev3.ClusterType, nil, "cluster echo.default:9000: unsupported outlier detection")
	testenv.Eventually(t, 30*time.Second, "the NACK in the policy's status", func() error {
		get(&bp, "echo")
		prog := condOf(bp.Status.Ancestors[0].Conditions, "Programmed")
		return testenv.Until(prog.Status == "False" && prog.Reason == "RejectedByProxy" && strings.Contains(prog.Message, "unsupported outlier detection"), "Programmed %+v", prog)
	})
	// As the SRE reads it.
	out, err := k.Kubectl(t.Context(), "", "get", "backendpolicy", "echo", "-n", "default", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	var shown v1alpha1.BackendPolicy
	if err := yaml.UnmarshalStrict([]byte(out), &shown); err != nil {
		t.Fatalf("kubectl get -o yaml: %v\n%s", err, out)
	}
	if prog := condOf(shown.Status.Ancestors[0].Conditions, "Programmed"); prog.Status != "False" || prog.Reason != "RejectedByProxy" ||
		prog.Message != "node picky-node rejected cluster version "+rejected+": cluster echo.default:9000: unsupported outlier detection" {
		t.Fatalf("kubectl get -o yaml shows Programmed %+v; want False, RejectedByProxy, the node and its words", prog)
	}
	// The same report again writes nothing (a restart would not flap).
	rep, _ := cp.Status()
	if n, err := writer.Write(t.Context(), rep, false); err != nil || n != 0 {
		t.Fatalf("rewriting an unchanged report wrote %d objects (%v); want 0", n, err)
	}
}

// A control-plane restart does not flap status: while the proxyless
// client reconnects to the new process, the BackendPolicy it had
// programmed stays Programmed=True (no write at all reaches the object),
// and traffic goes on throughout.
func TestKubernetesStatusSurvivesARestart(t *testing.T) {
	k, kc := startKube(t)
	b := startBackendOn(t, "ok", testenv.HostIP(t).String())
	start := func(xdsAddr string) *controlplane.ControlPlane {
		t.Helper()
		opts := kubeOptions(t, k.Config, kc)
		opts.XDSAddress = xdsAddr
		return startControlPlane(t, opts)
	}
	first := start("127.0.0.1:0")
	m := &mesh{t: t, cp: first}

	createEcho(t, kc, b)
	policy := echoRetryPolicy("echo")
	if err := kc.Create(t.Context(), policy); err != nil {
		t.Fatal(err)
	}
	c := m.client("echo.default:9000")
	programmed := func() (metav1.Condition, string) {
		var bp v1alpha1.BackendPolicy
		if err := kc.Get(t.Context(), client.ObjectKeyFromObject(policy), &bp); err != nil {
			t.Fatal(err)
		}
		if len(bp.Status.Ancestors) != 1 {
			return metav1.Condition{}, bp.ResourceVersion
		}
		return condOf(bp.Status.Ancestors[0].Conditions, "Programmed"), bp.ResourceVersion
	}
	var before metav1.Condition
	var version string
	testenv.Eventually(t, 30*time.Second, "the policy Programmed through the client", func() error {
		if got := outcomes(t, c, 5); got["backend:ok"] != 5 {
			return testenv.Until(false, "5 calls: %v", got)
		}
		before, version = programmed()
		return testenv.Until(before.Status == "True", "Programmed %+v", before)
	})
	time.Sleep(300 * time.Millisecond) // a few status intervals: nothing left to write
	if _, v := programmed(); v != version {
		t.Fatalf("status rewritten (resourceVersion %s → %s) with nothing changed", version, v)
	}

	// The control plane restarts on the same address; the client
	// reconnects and ACKs the new process's configuration.
	addr := first.XDSAddr()
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	second := start(addr)
	testenv.Eventually(t, 30*time.Second, "the client ACKed the new process", func() error {
		if got := outcomes(t, c, 5); got["backend:ok"] != 5 {
			return testenv.Until(false, "5 calls: %v", got)
		}
		rep, _ := second.Status()
		for _, o := range rep.Objects {
			if o.Kind == "BackendPolicy" {
				for _, cond := range o.Conditions {
					if cond.Type == "Programmed" {
						return testenv.Until(cond.Status == "True", "Programmed in the new process: %+v", cond)
					}
				}
			}
		}
		return testenv.Until(false, "no BackendPolicy in the new process's report")
	})
	time.Sleep(300 * time.Millisecond)
	if after, v := programmed(); v != version || !after.LastTransitionTime.Equal(&before.LastTransitionTime) {
		t.Fatalf("the restart rewrote the status: resourceVersion %s → %s, Programmed %+v (was %+v)", version, v, after, before)
	}
}
