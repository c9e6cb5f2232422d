package server

import (
	"fmt"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
)

func TestAcksTrackACKAndNACKPerNonce(t *testing.T) {
	a := newAcks()
	a.open(1)
	node := &corev3.Node{Id: "n1"}
	a.request(1, "grpc/default/x", &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: "T"})
	a.response(1, &discoveryv3.DiscoveryResponse{TypeUrl: "T", Nonce: "1", VersionInfo: "v1"})
	a.request(1, "grpc/default/x", &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: "T", ResponseNonce: "1", VersionInfo: "v1"})
	a.response(1, &discoveryv3.DiscoveryResponse{TypeUrl: "T", Nonce: "2", VersionInfo: "v2"})
	a.request(1, "grpc/default/x", &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: "T", ResponseNonce: "2", VersionInfo: "v1",
		ErrorDetail: &status.Status{Message: "bad v2"}})
	n := a.nodes()
	if len(n) != 1 || n[0].NodeID != "n1" {
		t.Fatalf("nodes %+v", n)
	}
	ts := n[0].Types["T"]
	if ts.Acked != "v1" || ts.Nacked != "v2" || ts.NackError != "bad v2" {
		t.Fatalf("type state %+v; want acked v1, nacked v2 with its message", ts)
	}
	// An unknown nonce (from before a restart) changes nothing.
	a.request(1, "grpc/default/x", &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: "T", ResponseNonce: "zzz"})
	if got := a.nodes()[0].Types["T"]; got.Acked != "v1" {
		t.Fatalf("after an unknown nonce: %+v", got)
	}
	a.closed(1)
	if len(a.nodes()) != 0 {
		t.Fatal("a closed stream is still listed")
	}
}

func TestAcksBoundUnansweredPushes(t *testing.T) {
	a := newAcks()
	a.open(1)
	for i := range 1000 {
		a.response(1, &discoveryv3.DiscoveryResponse{TypeUrl: "T", Nonce: fmt.Sprint(i), VersionInfo: fmt.Sprint(i)})
	}
	if n := len(a.streams[1].sent); n != maxPending {
		t.Fatalf("%d pushes remembered; want at most %d", n, maxPending)
	}
}
