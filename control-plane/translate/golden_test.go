package translate_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/bulkhead-mesh/bulkhead/control-plane/internal/golden"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/control-plane/translate"
)

// Output is what a golden file holds: the IR of every translated object,
// the statuses and every error, in a stable order. The xds package's
// goldens read the IR part back as their input.
type Output struct {
	Errors []string                  `json:"errors,omitempty"`
	Status []*translate.ObjectStatus `json:"status,omitempty"`
	// Proxies is the IR of a proxyless client (grpc/default/caller), of
	// every Gateway's Envoy (gateway/NAMESPACE/NAME), of the rate-limit
	// service when there are global rules, and of a sidecar.
	Proxies []*ir.Config `json:"proxies"`
}

// Layer 1 of the goldens: input resources → IR and statuses.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no testdata/*.in.yaml: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			res := &resource.Resources{}
			decodeErr := resource.Decode(res, in, data)
			res.Sort()
			r := translate.Translate(res)
			out := Output{Status: r.Status.Objects()}
			out.Proxies = append(out.Proxies, r.Config(ir.ProxyID{Role: ir.RoleGRPC, Namespace: "default", Name: "caller"}))
			for _, g := range res.Gateways {
				out.Proxies = append(out.Proxies, r.Config(ir.ProxyID{Role: ir.RoleGateway, Namespace: g.Namespace, Name: g.Name}))
			}
			if len(r.RateLimitDomains) > 0 {
				out.Proxies = append(out.Proxies, r.Config(ir.ProxyID{Role: ir.RoleRateLimit, Namespace: "default", Name: "ratelimit"}))
			}
			// The sidecar of the first Service, on that Service's first
			// port, its app 10000 ports above.
			if len(res.Services) > 0 && len(res.Services[0].Spec.Ports) > 0 {
				s := res.Services[0]
				p := uint32(s.Spec.Ports[0].Port)
				in := ir.InboundPort{Address: "0.0.0.0", Port: p, AppPort: p + 10000}
				out.Proxies = append(out.Proxies, r.Config(ir.ProxyID{Role: ir.RoleSidecar, Namespace: s.Namespace, Name: s.Name, Inbound: in.String()}))
			}
			if decodeErr != nil {
				out.Errors = append(out.Errors, strings.Split(decodeErr.Error(), "\n")...)
			}
			for _, e := range r.Errors {
				out.Errors = append(out.Errors, e.Error())
			}
			b, err := yaml.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			golden.Compare(t, filepath.Join("testdata", name+".ir.yaml"), b)
		})
	}
}
