package controlplane_test

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider/kubernetes"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// Two replicas serve xDS; one, elected with a Lease, writes status. The
// leader is cut off from the API server (as if it died: it cannot release
// the lease) in the middle of a stream of edits; it stops writing, the
// other takes over once the lease expires, and the status a watcher sees
// never flaps nor goes back a generation, and ends at the last edit.
func TestLeaderElectionHandsStatusOver(t *testing.T) {
	k, kc := startKube(t)
	start := func(identity string, cfg *rest.Config) *controlplane.ControlPlane {
		t.Helper()
		opts := kubeOptions(t, k.Config, kc)
		opts.Leader = &controlplane.LeaderElection{Config: cfg, Namespace: "default", Identity: identity}
		return startControlPlane(t, opts)
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

	policy := echoRetryPolicy("ghost")
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

	// Every status write, as a watcher of the object sees it.
	scheme, err := kubernetes.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	wc, err := client.NewWithWatch(k.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(t.Context(), &v1alpha1.BackendPolicyList{}, client.InNamespace("default"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var writes []metav1.Condition // the Accepted condition of each event
	var watched sync.WaitGroup
	watched.Go(func() {
		for ev := range w.ResultChan() {
			if bp, ok := ev.Object.(*v1alpha1.BackendPolicy); ok && len(bp.Status.Ancestors) == 1 {
				writes = append(writes, condOf(bp.Status.Ancestors[0].Conditions, "Accepted"))
			}
		}
	})

	// A stream of edits, one every 300 ms, from before the leader is cut
	// off until after the other took over.
	var (
		edits    sync.WaitGroup
		stopEdit = make(chan struct{})
		lastGen  atomic.Int64
	)
	edits.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopEdit:
				return
			case <-time.After(300 * time.Millisecond):
			}
			patch := fmt.Sprintf(`{"spec":{"retry":{"numRetries":%d}}}`, 3+i%5)
			var bp v1alpha1.BackendPolicy
			bp.Namespace, bp.Name = policy.Namespace, policy.Name
			if err := kc.Patch(t.Context(), &bp, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
				t.Errorf("edit %d: %v", i, err)
				return
			}
			lastGen.Store(bp.Generation)
		}
	})
	time.Sleep(time.Second)

	// The leader is cut off: b takes over once the lease expires, never
	// while a still leads.
	link.SetDown(true)
	cut := time.Now()
	testenv.Eventually(t, time.Minute, "replica b takes over", func() error {
		if b.Leading() && a.Leading() {
			t.Fatal("both replicas lead")
		}
		return testenv.Until(b.Leading(), "a leading: %v", a.Leading())
	})
	t.Logf("replica b leads %s after replica a was cut off", time.Since(cut).Round(100*time.Millisecond))
	time.Sleep(2 * time.Second) // edits go on under the new leader
	close(stopEdit)
	edits.Wait()

	// No status lost: the last edit's generation is observed; no flapping:
	// every write carries the same condition, observed at a generation
	// that never goes back, its transition time kept.
	final := lastGen.Load()
	if final < 5 {
		t.Fatalf("only %d generations edited", final)
	}
	testenv.Eventually(t, 30*time.Second, "the new leader writes the last edit's status", acceptedAt(final))
	w.Stop()
	watched.Wait()
	first := writes[0]
	for i, c := range writes {
		if c.Status != first.Status || c.Reason != first.Reason || !c.LastTransitionTime.Equal(&first.LastTransitionTime) {
			t.Fatalf("write %d of %d flapped: %+v, first %+v", i, len(writes), c, first)
		}
		if i > 0 && c.ObservedGeneration < writes[i-1].ObservedGeneration {
			t.Fatalf("write %d went back to generation %d from %d (a stale writer)", i, c.ObservedGeneration, writes[i-1].ObservedGeneration)
		}
	}
	t.Logf("%d generations, %d status writes seen, none flapped or went back", final, len(writes))
}

// The leader judges the proxies connected to the other replica too: a
// client served only by the follower programs the policy, its NACK is
// reported, and once the follower stops (its proxies gone with it) the
// policy is no longer Programmed.
func TestReplicasShareTheirProxiesACKs(t *testing.T) {
	k, kc := startKube(t)
	b := startBackendOn(t, "ok", testenv.HostIP(t).String())
	start := func(identity string) *controlplane.ControlPlane {
		t.Helper()
		opts := kubeOptions(t, k.Config, kc)
		opts.StatusSettle = 500 * time.Millisecond
		opts.Leader = &controlplane.LeaderElection{Config: k.Config, Namespace: "default", Identity: identity}
		return startControlPlane(t, opts)
	}
	leader := start("replica-a")
	testenv.Eventually(t, 30*time.Second, "replica a leads", func() error { return testenv.Until(leader.Leading(), "not yet") })
	follower := start("replica-b")

	createEcho(t, kc, b)
	policy := echoRetryPolicy("echo")
	if err := kc.Create(t.Context(), policy); err != nil {
		t.Fatal(err)
	}
	programmed := func() metav1.Condition {
		var bp v1alpha1.BackendPolicy
		if err := kc.Get(t.Context(), client.ObjectKeyFromObject(policy), &bp); err != nil {
			t.Fatal(err)
		}
		if len(bp.Status.Ancestors) != 1 {
			return metav1.Condition{}
		}
		return condOf(bp.Status.Ancestors[0].Conditions, "Programmed")
	}
	// Nothing connected anywhere: not programmed.
	testenv.Eventually(t, 30*time.Second, "Programmed=False, no proxy", func() error {
		c := programmed()
		return testenv.Until(c.Reason == "NoProxyConnected", "Programmed %+v", c)
	})

	// A proxyless client of the follower only.
	m := &mesh{t: t, cp: follower}
	c := m.client("echo.default:9000")
	testenv.Eventually(t, 30*time.Second, "the leader reports the follower's client", func() error {
		if got := outcomes(t, c, 5); got["backend:ok"] != 5 {
			return testenv.Until(false, "5 calls: %v", got)
		}
		p := programmed()
		return testenv.Until(p.Status == "True" && p.Message == "applied by every connected node of grpc/default/caller", "Programmed %+v", p)
	})
	// bulkhead status and the admin endpoint say the same on either
	// replica: the leader lists the follower's node.
	testenv.Eventually(t, 10*time.Second, "the leader's report lists the follower's node", func() error {
		rep, _ := leader.Status()
		return testenv.Until(len(rep.Proxies) == 1 && rep.Proxies[0].Proxy == "grpc/default/caller" && len(rep.Proxies[0].Nodes) == 1 && rep.Proxies[0].InSync == 1,
			"proxies %+v", rep.Proxies)
	})

	// A node of the follower NACKs: the leader says so, in its words.
	m.nack("picky-node", resourcev3.ClusterType, nil, "cluster echo.default:9000: unsupported outlier detection")
	testenv.Eventually(t, 30*time.Second, "the follower's NACK in the leader's status", func() error {
		p := programmed()
		return testenv.Until(p.Reason == "RejectedByProxy" && strings.Contains(p.Message, "node picky-node rejected") && strings.Contains(p.Message, "unsupported outlier detection"), "Programmed %+v", p)
	})

	// The follower stops: its nodes go with it.
	if err := follower.Stop(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "no proxy left", func() error {
		p := programmed()
		return testenv.Until(p.Reason == "NoProxyConnected", "Programmed %+v", p)
	})
}
