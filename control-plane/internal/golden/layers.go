package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
	"github.com/bulkhead-mesh/bulkhead/control-plane/translate"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// The two golden layers (Envoy Gateway's shape): NAME.in.yaml (input
// resources) → NAME.ir.yaml (the IR of every proxy, the statuses and every
// error), then NAME.ir.yaml → NAME.xds.yaml (the xDS of every proxy). A
// regression shows in exactly one layer's diff.

// Output is what an IR golden holds, in a stable order. Layer 2 reads its
// proxies back as its input.
type Output struct {
	Errors []string                  `json:"errors,omitempty"`
	Status []*translate.ObjectStatus `json:"status,omitempty"`
	// Proxies is the IR of a proxyless client (grpc/default/caller), of
	// every Gateway's Envoy (gateway/NAMESPACE/NAME), of the rate-limit
	// service when there are global rules, and of a sidecar.
	Proxies []*ir.Config `json:"proxies"`
}

// Translation is layer 1 for one input file: it translates in and
// compares the output with irPath.
func Translation(t *testing.T, in, irPath string) {
	t.Helper()
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	res := &resource.Resources{}
	// The file is named as the test sees it (testdata/NAME.in.yaml), so
	// that goldens do not depend on where the repository is.
	decodeErr := resource.Decode(res, filepath.Join("testdata", filepath.Base(in)), data)
	res.Sort()
	r := translate.Translate(res)
	out := Output{Status: r.Status.Objects()}
	out.Proxies = append(out.Proxies, r.Config(workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "caller"}))
	for _, g := range res.Gateways {
		out.Proxies = append(out.Proxies, r.Config(workload.ProxyID{Role: workload.RoleGateway, Namespace: g.Namespace, Name: g.Name}))
	}
	if len(r.RateLimitDomains) > 0 {
		out.Proxies = append(out.Proxies, r.Config(workload.ProxyID{Role: workload.RoleRateLimit, Namespace: "default", Name: "ratelimit"}))
	}
	// The sidecar of the first Service, on that Service's first port, its
	// app 10000 ports above.
	if len(res.Services) > 0 && len(res.Services[0].Spec.Ports) > 0 {
		s := res.Services[0]
		p := uint32(s.Spec.Ports[0].Port)
		in := workload.InboundPort{Address: "0.0.0.0", Port: p, AppPort: p + 10000}
		out.Proxies = append(out.Proxies, r.Config(workload.ProxyID{Role: workload.RoleSidecar, Namespace: s.Namespace, Name: s.Name, Inbound: in.String()}))
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
	Compare(t, irPath, b)
}

// XDS is layer 2 for one IR golden: it builds the xDS of its proxies and
// compares them with xdsPath.
func XDS(t *testing.T, irPath, xdsPath string) {
	t.Helper()
	data, err := os.ReadFile(irPath)
	if err != nil {
		t.Fatal(err)
	}
	var input Output
	if err := yaml.Unmarshal(data, &input); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, cfg := range input.Proxies {
		res, err := xds.Build(cfg)
		if err != nil {
			t.Fatalf("build %s: %v", cfg.Proxy, err)
		}
		y, err := res.YAML()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "# proxy %s\n---\n%s", cfg.Proxy, y)
	}
	Compare(t, xdsPath, []byte(out.String()))
}

// Cases runs both layers on every testdata/NAME.in.yaml of the calling
// package (a policy feature's folder): NAME.ir.yaml and NAME.xds.yaml sit
// beside it.
func Cases(t *testing.T) {
	t.Helper()
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no testdata/*.in.yaml: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			irPath := filepath.Join("testdata", name+".ir.yaml")
			Translation(t, in, irPath)
			if t.Failed() {
				return
			}
			XDS(t, irPath, filepath.Join("testdata", name+".xds.yaml"))
		})
	}
}
