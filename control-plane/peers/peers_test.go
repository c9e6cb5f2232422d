package peers_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-mesh/bulkhead/control-plane/peers"
	"github.com/bulkhead-mesh/bulkhead/control-plane/server"
	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// Two replicas share their connected nodes through ConfigMaps of a real API
// server: each sees only the other's, only connected nodes, nothing of a
// replica gone quiet; an unchanged state is rewritten only when the
// heartbeat is due; a stopped replica withdraws its own.
func TestReplicasSeeEachOthersNodes(t *testing.T) {
	k := testenv.NewKube(t, components.KubeOptions{})
	cs, err := kubernetes.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	replica := func(identity string) *peers.Peers {
		return &peers.Peers{Client: cs, Namespace: "default", Name: "bulkhead-control-plane", Identity: identity, Heartbeat: time.Minute, Stale: 30 * time.Second}
	}
	// An identity as a host name and suffix may be: not a valid object name
	// as it is.
	a, b := replica("Host_A-x1"), replica("host-b-y2")
	now := time.Now()
	node := func(id string, connected bool) server.NodeState {
		return server.NodeState{NodeID: id, Proxy: "grpc/default/caller", Connected: connected,
			Types: map[string]*server.TypeState{"type.googleapis.com/envoy.config.cluster.v3.Cluster": {Acked: "v1", At: now}}}
	}
	if err := a.Publish(ctx, []server.NodeState{node("a-1", true), node("a-gone", false)}, now); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, []server.NodeState{node("b-1", true), node("b-2", true)}, now); err != nil {
		t.Fatal(err)
	}
	ids := func(p *peers.Peers, at time.Time) []string {
		t.Helper()
		nodes, err := p.Others(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range nodes {
			out = append(out, n.NodeID)
			if n.Types["type.googleapis.com/envoy.config.cluster.v3.Cluster"].Acked != "v1" {
				t.Fatalf("node %s came back without its ACK: %+v", n.NodeID, n.Types)
			}
		}
		return out
	}
	if got := ids(a, now); len(got) != 2 || got[0] != "b-1" || got[1] != "b-2" {
		t.Fatalf("a sees %v; want b's two nodes", got)
	}
	if got := ids(b, now); len(got) != 1 || got[0] != "a-1" {
		t.Fatalf("b sees %v; want a's connected node only", got)
	}
	if got := ids(a, now.Add(31*time.Second)); len(got) != 0 {
		t.Fatalf("31 s later without a rewrite, a sees %v; want nothing (b is gone)", got)
	}

	// Unchanged within the heartbeat: no write; once it is due: a write.
	version := func() string {
		t.Helper()
		list, err := cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=control-plane-nodes"})
		if err != nil {
			t.Fatal(err)
		}
		for _, cm := range list.Items {
			if cm.Name == "bulkhead-control-plane-nodes-host-b-y2" {
				return cm.ResourceVersion
			}
		}
		t.Fatalf("no ConfigMap of b among %d", len(list.Items))
		return ""
	}
	before := version()
	if err := b.Publish(ctx, []server.NodeState{node("b-1", true), node("b-2", true)}, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != before {
		t.Fatalf("an unchanged state was rewritten (%s → %s)", before, v)
	}
	if err := b.Publish(ctx, []server.NodeState{node("b-1", true), node("b-2", true)}, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if v := version(); v == before {
		t.Fatal("the heartbeat did not rewrite the state")
	}
	if got := ids(a, now.Add(80*time.Second)); len(got) != 2 {
		t.Fatalf("after b's heartbeat, a sees %v; want b's two nodes", got)
	}

	if err := b.Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ids(a, now); len(got) != 0 {
		t.Fatalf("after b withdrew, a sees %v", got)
	}
}
