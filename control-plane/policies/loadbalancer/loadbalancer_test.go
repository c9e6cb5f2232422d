package loadbalancer_test

import (
	"testing"

	"github.com/bulkhead-mesh/bulkhead/control-plane/api/v1alpha1"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/policies/loadbalancer"
)

func TestBuild(t *testing.T) {
	if lb, hash := loadbalancer.Build(&v1alpha1.LoadBalancer{Type: v1alpha1.LoadBalancerRingHash}); lb.Policy != ir.LBRingHash || lb.MinimumRingSize != 1024 || hash != nil {
		t.Fatalf("ring hash without options: %+v %+v; want a 1024 ring and no hash header", lb, hash)
	}
	if _, hash := loadbalancer.Build(&v1alpha1.LoadBalancer{Type: v1alpha1.LoadBalancerRingHash, RingHash: &v1alpha1.RingHash{Header: "x-session-id"}}); hash == nil || hash.Header != "x-session-id" {
		t.Fatalf("hash %+v", hash)
	}
	if lb, _ := loadbalancer.Build(&v1alpha1.LoadBalancer{Type: v1alpha1.LoadBalancerLeastRequest}); lb.Policy != ir.LBLeastRequest {
		t.Fatalf("%+v", lb)
	}
}
