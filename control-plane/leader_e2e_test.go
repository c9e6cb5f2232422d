package controlplane_test

import (
	"log/slog"
	"net/url"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/kubestatus"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider/kubernetes"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// Two replicas serve xDS; one, elected with a Lease, writes status. The
// leader cut off from the API server (as if it died: it cannot release the
// lease) stops writing, and the other takes over once the lease expires
// and writes the status of what changes next.
func TestLeaderElectionHandsStatusOver(t *testing.T) {
	k, kc := startKube(t)
	start := func(identity string, cfg *rest.Config) *controlplane.ControlPlane {
		t.Helper()
		cp, err := controlplane.Start(t.Context(), controlplane.Options{
			Provider:   &kubernetes.Provider{Config: k.Config, Log: slog.New(slog.DiscardHandler)},
			XDSAddress: "127.0.0.1:0", AdminAddress: "127.0.0.1:0",
			StatusWriter: &kubestatus.Writer{Client: kc, Log: slog.New(slog.DiscardHandler)}, StatusInterval: 100 * time.Millisecond,
			Leader: &controlplane.LeaderElection{Config: cfg, Namespace: "default", Identity: identity},
			Log:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cp.Stop() })
		return cp
	}
	// Replica a reaches the API server for its lease through a link the
	// test can cut.
	host, err := url.Parse(k.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	link := testenv.StartTCPProxy(t, host.Host)
	viaLink := rest.CopyConfig(k.Config)
	viaLink.Host = "https://" + link.Addr()
	a := start("replica-a", viaLink)
	testenv.Eventually(t, 30*time.Second, "replica a leads", func() error { return testenv.Until(a.Leading(), "not yet") })
	b := start("replica-b", k.Config)

	policy := &v1alpha1.BackendPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "echo"}, Spec: v1alpha1.BackendPolicySpec{
		TargetRefs: []v1alpha1.PolicyTargetReference{{LocalPolicyTargetReference: gwapiv1.LocalPolicyTargetReference{Group: "", Kind: "Service", Name: "ghost"}}},
		Retry:      &v1alpha1.Retry{NumRetries: 2, RetryOn: []v1alpha1.RetryOn{"unavailable"}},
	}}
	if err := kc.Create(t.Context(), policy); err != nil {
		t.Fatal(err)
	}
	acceptedAt := func(gen int64) func() error {
		return func() error {
			var bp v1alpha1.BackendPolicy
			if err := kc.Get(t.Context(), client.ObjectKeyFromObject(policy), &bp); err != nil {
				return err
			}
			if len(bp.Status.Ancestors) != 1 {
				return testenv.Until(false, "ancestors %+v", bp.Status.Ancestors)
			}
			c := condOf(bp.Status.Ancestors[0].Conditions, "Accepted")
			return testenv.Until(c.Reason == "TargetNotFound" && c.ObservedGeneration == gen, "Accepted %+v", c)
		}
	}
	testenv.Eventually(t, 30*time.Second, "the status written by the leader", acceptedAt(1))
	if b.Leading() {
		t.Fatal("both replicas lead")
	}

	// The leader is cut off: b takes over once the lease expires (10 s,
	// renewed every 2 s), never while a still leads.
	link.SetDown(true)
	cut := time.Now()
	testenv.Eventually(t, time.Minute, "replica b takes over", func() error {
		if b.Leading() && a.Leading() {
			t.Fatal("both replicas lead")
		}
		return testenv.Until(b.Leading(), "a leading: %v", a.Leading())
	})
	t.Logf("replica b leads %s after replica a was cut off", time.Since(cut).Round(100*time.Millisecond))

	// What changes now is written by b.
	var bp v1alpha1.BackendPolicy
	if err := kc.Get(t.Context(), client.ObjectKeyFromObject(policy), &bp); err != nil {
		t.Fatal(err)
	}
	bp.Spec.Retry.NumRetries = 3
	if err := kc.Update(t.Context(), &bp); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the new leader writes the next status", acceptedAt(2))
}
