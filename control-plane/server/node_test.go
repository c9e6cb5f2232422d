package server

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestProxyOf(t *testing.T) {
	md := func(m map[string]any) *structpb.Struct {
		s, err := structpb.NewStruct(map[string]any{"bulkhead": m})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	id, err := ProxyOf(&corev3.Node{Id: "a", Metadata: md(map[string]any{"role": "gateway", "name": "ai"})})
	if err != nil || id.String() != "gateway/default/ai" {
		t.Fatalf("ProxyOf = %v, %v; want gateway/default/ai (namespace defaults to default)", id, err)
	}
	flat, _ := structpb.NewStruct(map[string]any{"bulkhead": "ratelimit/default/ratelimit"})
	if id, err := ProxyOf(&corev3.Node{Id: "rl", Metadata: flat}); err != nil || id.String() != "ratelimit/default/ratelimit" {
		t.Fatalf("ProxyOf(flat) = %v, %v; want ratelimit/default/ratelimit", id, err)
	}
	badFlat, _ := structpb.NewStruct(map[string]any{"bulkhead": "ratelimit"})
	for _, tc := range []struct {
		node *corev3.Node
		want string
	}{
		{nil, "carries no node"},
		{&corev3.Node{Id: "b"}, `node "b": metadata has no "bulkhead" struct`},
		{&corev3.Node{Id: "c", Metadata: md(map[string]any{"role": "proxy", "name": "x"})}, `unknown role "proxy"`},
		{&corev3.Node{Id: "d", Metadata: md(map[string]any{"role": "grpc"})}, "name is empty"},
		{&corev3.Node{Id: "f", Metadata: badFlat}, `node "f": metadata bulkhead: node "ratelimit": want ROLE/NAME`},
	} {
		if _, err := ProxyOf(tc.node); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ProxyOf(%v): %v; want an error containing %q", tc.node, err, tc.want)
		}
	}
	if got := (nodeHash{}).ID(&corev3.Node{Id: "e"}); got != "invalid/e" {
		t.Errorf("hash of a node without identity = %q; it must never collide with a real proxy", got)
	}
}
