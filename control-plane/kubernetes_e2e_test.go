package controlplane_test

import (
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider/kubernetes"
	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// routableIPv4 is an address of this machine that an EndpointSlice may
// carry (the API server refuses loopback and link-local ones).
func routableIPv4(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address for an EndpointSlice to carry")
	return nil
}

// Kubernetes mode end to end: objects written to a real API server drive
// live proxyless traffic through the same pipeline as universal mode; a
// retry added to a BackendPolicy with the API recovers the calls a flaky
// backend fails.
func TestKubernetesModeDrivesLiveTraffic(t *testing.T) {
	root := filepath.Join("..")
	k := testenv.NewKube(t, components.KubeOptions{CRDDirs: []string{filepath.Join(root, "policies", "crds"), filepath.Join(root, "policies", "crds-gateway-api")}})
	scheme, err := kubernetes.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	kc, err := client.New(k.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	// A flaky backend on an address an EndpointSlice may carry.
	lis, err := net.Listen("tcp", net.JoinHostPort(routableIPv4(t).String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: "flaky", addr: lis.Addr().(*net.TCPAddr), srv: grpc.NewServer()}
	healthpb.RegisterHealthServer(b.srv, b)
	go b.srv.Serve(lis)
	t.Cleanup(b.srv.Stop)
	b.failEvery.Store(2)

	cp, err := controlplane.Start(t.Context(), controlplane.Options{
		Provider:   &kubernetes.Provider{Config: k.Config, Log: slog.New(slog.DiscardHandler)},
		XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Stop() })
	m := &mesh{t: t, cp: cp}

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
	c := m.client("echo.default:9000")
	testenv.Eventually(t, 30*time.Second, "calls reach the backend, half of them failing", func() error {
		got := outcomes(t, c, 20)
		return testenv.Until(got["backend:flaky"] > 0 && got["Unavailable"] > 0, "20 calls: %v", got)
	})

	// The SRE adds a retry.
	if err := kc.Create(t.Context(), &v1alpha1.BackendPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "echo"}, Spec: v1alpha1.BackendPolicySpec{
		TargetRefs: []v1alpha1.PolicyTargetReference{{LocalPolicyTargetReference: gwapiv1.LocalPolicyTargetReference{Group: "", Kind: "Service", Name: "echo"}}},
		Retry:      &v1alpha1.Retry{NumRetries: 2, RetryOn: []v1alpha1.RetryOn{"unavailable"}},
	}}); err != nil {
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
