package provider_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/provider"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

const goodRetry = `apiVersion: mesh.bulkhead.dev/v1alpha1
kind: BackendPolicy
metadata: {name: auth}
spec:
  targetRefs: [{group: "", kind: Service, name: auth}]
  retry: {numRetries: 2, retryOn: [unavailable]}
`

func snapshot(t *testing.T, last *provider.LastAccepted, docs ...string) *resource.Resources {
	t.Helper()
	res := &resource.Resources{}
	for i, d := range docs {
		_ = resource.Decode(res, []string{"a.yaml", "b.yaml"}[i], []byte(d))
	}
	last.Apply(res)
	return res
}

// A refused version is replaced by the last accepted one (which keeps the
// origin it was read at); a deleted object is gone; a cold start has
// nothing to put back.
func TestLastAccepted(t *testing.T) {
	var last provider.LastAccepted
	key := resource.Key{Kind: "BackendPolicy", Namespace: "default", Name: "auth"}
	bad := strings.Replace(goodRetry, "numRetries: 2", "numRetries: -1", 1)

	if res := snapshot(t, &provider.LastAccepted{}, bad); res.Has(key) || res.RefusedVersion(key) == nil {
		t.Fatal("cold start: a refused version must be recorded, with nothing in its place")
	}
	snapshot(t, &last, goodRetry)
	res := snapshot(t, &last, bad)
	if len(res.BackendPolicies) != 1 || res.BackendPolicies[0].Spec.Retry.NumRetries != 2 {
		t.Fatalf("after a refused edit the snapshot holds %+v; want the last accepted version", res.BackendPolicies)
	}
	rf := res.RefusedVersion(key)
	if rf == nil || !strings.Contains(rf.Errors[0].Error(), "spec.retry.numRetries") || len(rf.TargetRefs) != 1 {
		t.Fatalf("refused version %+v; want its field and its targets", rf)
	}
	// Still kept at the next refused snapshot, then replaced by a good one.
	if res := snapshot(t, &last, bad); len(res.BackendPolicies) != 1 {
		t.Fatal("the kept version was lost at the second refused snapshot")
	}
	res = snapshot(t, &last, strings.Replace(goodRetry, "numRetries: 2", "numRetries: 3", 1))
	if res.BackendPolicies[0].Spec.Retry.NumRetries != 3 || res.RefusedVersion(key) != nil {
		t.Fatal("a good edit must replace the kept version")
	}
	// Deleted: gone, even if a later file is refused.
	if res := snapshot(t, &last, ""); res.Has(key) {
		t.Fatal("a deleted object was kept")
	}
	if res := snapshot(t, &last, bad); res.Has(key) {
		t.Fatal("an object deleted earlier came back")
	}
}
