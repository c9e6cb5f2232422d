package controlplane_test

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// simClient is a proxyless client as the control plane sees it: one ADS
// stream subscribed to a listener, its route configuration, the clusters
// and one cluster's endpoints, ACKing every push. It records the last
// version it ACKed per type.
type simClient struct {
	acked [4]atomic.Pointer[string] // LDS, RDS, CDS, EDS
}

var simTypes = []string{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType, resourcev3.EndpointType}

func runSimClient(ctx context.Context, cc *grpc.ClientConn, id int, target string) (*simClient, error) {
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	md, _ := structpb.NewStruct(map[string]any{"bulkhead": map[string]any{"role": "grpc", "namespace": "default", "name": "sim"}})
	node := &corev3.Node{Id: fmt.Sprintf("sim-%d", id), Metadata: md}
	// By name, as grpc-go subscribes: the listener (the target), the route
	// configuration it names, the cluster that routes to and its endpoints
	// (all named after the target for a Service).
	names := map[string][]string{
		resourcev3.ListenerType: {target}, resourcev3.RouteType: {target},
		resourcev3.ClusterType: {target}, resourcev3.EndpointType: {target},
	}
	var sendMu sync.Mutex
	send := func(r *discoveryv3.DiscoveryRequest) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		r.Node = node
		return stream.Send(r)
	}
	for _, typ := range simTypes {
		if err := send(&discoveryv3.DiscoveryRequest{TypeUrl: typ, ResourceNames: names[typ]}); err != nil {
			return nil, err
		}
	}
	c := &simClient{}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			typ := resp.GetTypeUrl()
			v := resp.GetVersionInfo()
			for i, t := range simTypes {
				if t == typ {
					c.acked[i].Store(&v)
				}
			}
			if send(&discoveryv3.DiscoveryRequest{TypeUrl: typ, ResourceNames: names[typ], VersionInfo: v, ResponseNonce: resp.GetNonce()}) != nil {
				return
			}
		}
	}()
	return c, nil
}

func (c *simClient) version(typ int) string {
	if p := c.acked[typ].Load(); p != nil {
		return *p
	}
	return ""
}

// simFleet is n simulated clients of one target, their streams carried by
// a few connections, as many clients per process would.
type simFleet []*simClient

func startSimFleet(b *testing.B, xdsAddr string, n int, target string) simFleet {
	b.Helper()
	var conns []*grpc.ClientConn
	for range 8 {
		cc, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cc.Close() })
		conns = append(conns, cc)
	}
	f := make(simFleet, n)
	for i := range n {
		var err error
		if f[i], err = runSimClient(b.Context(), conns[i%len(conns)], i, target); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// allAt: every client has ACKed a version of type typ other than not.
func (f simFleet) allAt(typ int, not string) bool {
	for _, c := range f {
		if v := c.version(typ); v == "" || v == not {
			return false
		}
	}
	return true
}

// converge makes a change and returns the time until every client has
// ACKed a new version of type typ.
func (f simFleet) converge(b *testing.B, typ int, change func() error) time.Duration {
	b.Helper()
	old := f[0].version(typ)
	start := time.Now()
	if err := change(); err != nil {
		b.Fatal(err)
	}
	for !f.allAt(typ, old) {
		if time.Since(start) > time.Minute {
			b.Fatal("not converged within 1m")
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// reportLatency reports the p50 and p99 of samples.
func reportLatency(b *testing.B, samples []time.Duration) {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	b.ReportMetric(float64(samples[len(samples)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(samples[(len(samples)*99)/100].Milliseconds()), "p99-ms")
}

// convergence measures, for n clients, the time from writing a file until
// every client has ACKed the new version of type typ.
func convergence(b *testing.B, n int, typ int, change func(i int) (string, string)) {
	files := map[string]string{"route.yaml": fmt.Sprintf(echoRoute, 50, 50)}
	for _, name := range []string{"echo", "echo-v1", "echo-v2"} {
		files[name+".yaml"] = simService(name, 50051)
	}
	m := startMesh(b, files)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	clients := startSimFleet(b, m.cp.XDSAddr(), n, "echo.default:9000")
	testenv.Eventually(b, 2*time.Minute, "every client's first configuration", func() error {
		return testenv.Until(clients.allAt(typ, ""), "not every client has it")
	})
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perProxy := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)

	var samples []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		name, body := change(i)
		samples = append(samples, clients.converge(b, typ, func() error { m.write(name, body); return nil }))
	}
	reportLatency(b, samples)
	// Both ends of the streams live in this process: an upper bound of the
	// control plane's memory per connected proxy.
	b.ReportMetric(perProxy, "heapB/proxy")
}

func simService(name string, port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s}
spec:
  ports: [{name: grpc, port: 9000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s-1
  labels: {kubernetes.io/service-name: %s}
addressType: IPv4
ports: [{name: grpc, port: %d}]
endpoints: [{addresses: [127.0.0.1]}]
`, name, name, name, port)
}

// BenchmarkConvergencePolicy1000: a route change (new weights) until 1,000
// clients have ACKed the new route configuration. Includes the 100 ms
// debounce. Target p99 under 1 s.
func BenchmarkConvergencePolicy1000(b *testing.B) {
	convergence(b, 1000, 1, func(i int) (string, string) {
		return "route.yaml", fmt.Sprintf(echoRoute, 10+i%80, 90-i%80)
	})
}

// BenchmarkConvergenceEndpoints1000: an endpoint change until 1,000 clients
// have ACKed the new endpoints (EDS only). Target under 200 ms.
func BenchmarkConvergenceEndpoints1000(b *testing.B) {
	convergence(b, 1000, 3, func(i int) (string, string) {
		return "echo.yaml", simService("echo", 40000+i%1000)
	})
}
