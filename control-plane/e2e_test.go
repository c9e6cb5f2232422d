package controlplane_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/structpb"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/internal/grpcbootstrap"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// backend is a real gRPC server that answers Health/Check and says who it
// is in the "x-backend" response header. Its behaviour can be changed while
// it runs: fail some calls, or hold them.
type backend struct {
	healthpb.UnimplementedHealthServer
	name  string
	addr  *net.TCPAddr
	srv   *grpc.Server
	calls atomic.Int64
	// failEvery > 0 makes every failEvery-th call fail with UNAVAILABLE
	// (1: every call).
	failEvery atomic.Int64
	// hold, when set, blocks each call until it is closed.
	hold     atomic.Pointer[chan struct{}]
	inFlight atomic.Int64
}

func (b *backend) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	n := b.calls.Add(1)
	b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	if h := b.hold.Load(); h != nil {
		select {
		case <-*h:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f := b.failEvery.Load(); f > 0 && n%f == 0 {
		// No response headers on failures: a call that received headers is
		// committed and gRPC does not retry it.
		return nil, status.Error(codes.Unavailable, b.name+" fails this call")
	}
	if err := grpc.SetHeader(ctx, metadata.Pairs("x-backend", b.name)); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	return startBackendOn(t, name, "127.0.0.1")
}

// startBackendOn starts a backend listening on host (an address of this
// machine), on a free port.
func startBackendOn(t *testing.T, name, host string) *backend {
	t.Helper()
	lis, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: lis.Addr().(*net.TCPAddr), srv: grpc.NewServer()}
	healthpb.RegisterHealthServer(b.srv, b)
	go b.srv.Serve(lis)
	t.Cleanup(b.srv.Stop)
	return b
}

// service writes a Service with one gRPC port and an EndpointSlice per
// backend, as `bulkhead up` does for the processes it starts.
func service(name string, port int, backends ...*backend) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata: {name: %s}
spec:
  ports: [{name: grpc, port: %d, appProtocol: kubernetes.io/h2c}]
`, name, port)
	for _, be := range backends {
		fmt.Fprintf(&b, `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s-%s
  labels: {kubernetes.io/service-name: %s}
addressType: IPv4
ports: [{name: grpc, port: %d}]
endpoints: [{addresses: ["%s"], conditions: {ready: true}}]
`, name, be.name, name, be.addr.Port, be.addr.IP)
	}
	return b.String()
}

type mesh struct {
	t   testing.TB
	dir string
	cp  *controlplane.ControlPlane
}

func startMesh(t testing.TB, files map[string]string) *mesh {
	t.Helper()
	m := &mesh{t: t, dir: t.TempDir()}
	for name, body := range files {
		m.write(name, body)
	}
	cp, err := controlplane.Start(t.Context(), controlplane.Options{
		ConfigDirs:   []string{m.dir},
		XDSAddress:   "127.0.0.1:0",
		AdminAddress: "127.0.0.1:0",
		Log:          slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	m.cp = cp
	// m.cp, not cp: a test may replace the control plane.
	t.Cleanup(func() {
		if err := m.cp.Stop(); err != nil {
			t.Errorf("control plane: %v", err)
		}
	})
	return m
}

// write replaces a file atomically, as an editor or kubectl-like tool would.
func (m *mesh) write(name, body string) {
	m.t.Helper()
	if err := m.tryWrite(name, body); err != nil {
		m.t.Fatal(err)
	}
}

// tryWrite is write for goroutines other than the test's.
func (m *mesh) tryWrite(name, body string) error {
	tmp := filepath.Join(m.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(m.dir, name))
}

// client dials a Service through the xDS resolver, as the proxyless
// application "caller" would.
func (m *mesh) client(target string) healthpb.HealthClient {
	m.t.Helper()
	bs, err := grpcbootstrap.JSON(grpcbootstrap.Options{
		NodeID:     "caller-" + m.t.Name(),
		Proxy:      workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "caller"},
		XDSAddress: m.cp.XDSAddr(),
	})
	if err != nil {
		m.t.Fatal(err)
	}
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bs)
	if err != nil {
		m.t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+target, grpc.WithResolvers(resolver), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

// call makes one call and returns the backend that served it.
func call(ctx context.Context, c healthpb.HealthClient, md ...string) (string, error) {
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	var hdr metadata.MD
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr), grpc.WaitForReady(true)); err != nil {
		return "", err
	}
	return strings.Join(hdr.Get("x-backend"), ","), nil
}

// count makes n calls that must all succeed and counts them by backend.
func count(t *testing.T, c healthpb.HealthClient, n int, md ...string) map[string]int {
	t.Helper()
	got := outcomes(t, c, n, md...)
	for k := range got {
		if !strings.HasPrefix(k, "backend:") {
			t.Fatalf("calls ended %v; want all served", got)
		}
	}
	out := map[string]int{}
	for k, v := range got {
		out[strings.TrimPrefix(k, "backend:")] = v
	}
	return out
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

const echoRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 9000}]
  rules:
  - matches:
    - headers: [{name: x-canary, value: "1"}]
    backendRefs: [{name: echo-v2, port: 9000}]
  - backendRefs:
    - {name: echo-v1, port: 9000, weight: %d}
    - {name: echo-v2, port: 9000, weight: %d}
`

// startEchoMesh runs Service echo whose GRPCRoute (echoRoute) splits between
// echo-v1 and echo-v2 with the given weights, each with one backend.
func startEchoMesh(t *testing.T, w1, w2 int) (*mesh, *backend, *backend) {
	t.Helper()
	v1, v2 := startBackend(t, "v1"), startBackend(t, "v2")
	m := startMesh(t, map[string]string{
		"echo.yaml":    service("echo", 9000),
		"echo-v1.yaml": service("echo-v1", 9000, v1),
		"echo-v2.yaml": service("echo-v2", 9000, v2),
		"route.yaml":   fmt.Sprintf(echoRoute, w1, w2),
	})
	return m, v1, v2
}

// Weighted split, header routing and a live route change, through grpc-go's
// own xDS client against the running control plane.
func TestProxylessRouting(t *testing.T) {
	m, _, v2 := startEchoMesh(t, 80, 20)
	c := m.client("echo.default:9000")

	t.Run("weighted split", func(t *testing.T) {
		// 1000 calls at 80/20: the binomial standard deviation is 12.6
		// calls, so ±50 (4 sd) fails by chance about once in 15,000 runs.
		const n = 1000
		got := count(t, c, n)
		if got["v1"]+got["v2"] != n {
			t.Fatalf("calls served by %v; want only v1 and v2", got)
		}
		if d := got["v1"] - 800; d < -50 || d > 50 {
			t.Fatalf("v1 served %d of %d calls; want 800 ± 50 (80%%)", got["v1"], n)
		}
		t.Logf("80/20 split observed: %v", got)
	})

	t.Run("header match", func(t *testing.T) {
		got := count(t, c, 50, "x-canary", "1")
		if got["v2"] != 50 {
			t.Fatalf("calls with x-canary: 1 served by %v; want all by v2", got)
		}
	})

	t.Run("route change applied live", func(t *testing.T) {
		before := v2.calls.Load()
		m.write("route.yaml", fmt.Sprintf(echoRoute, 0, 100))
		testenv.Eventually(t, 10*time.Second, "all calls to v2 after the route change", func() error {
			got := count(t, c, 20)
			return testenv.Until(got["v2"] == 20, "20 calls: %v", got)
		})
		if v2.calls.Load() == before {
			t.Fatal("v2 served nothing")
		}
	})
}

// Clients keep serving on their last configuration while the control plane
// is down, then resync with the one that replaces it.
func TestControlPlaneRestart(t *testing.T) {
	m, _, _ := startEchoMesh(t, 100, 0)
	c := m.client("echo.default:9000")
	if got := count(t, c, 10); got["v1"] != 10 {
		t.Fatalf("before the restart: %v; want all on v1", got)
	}
	addr := m.cp.XDSAddr()
	if err := m.cp.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := count(t, c, 10); got["v1"] != 10 {
		t.Fatalf("with the control plane down: %v; want all still on v1", got)
	}
	m.write("route.yaml", fmt.Sprintf(echoRoute, 0, 100))
	cp, err := controlplane.Start(t.Context(), controlplane.Options{ConfigDirs: []string{m.dir}, XDSAddress: addr, Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	m.cp = cp
	testenv.Eventually(t, 30*time.Second, "the client resynced with the new control plane", func() error {
		got := count(t, c, 10)
		return testenv.Until(got["v2"] == 10, "10 calls: %v", got)
	})
}

// adsClient opens a raw ADS connection to the mesh's control plane, for
// tests that play a proxy themselves.
func (m *mesh) adsClient() discoveryv3.AggregatedDiscoveryServiceClient {
	m.t.Helper()
	cc, err := grpc.NewClient(m.cp.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { cc.Close() })
	return discoveryv3.NewAggregatedDiscoveryServiceClient(cc)
}

// nack plays a node of grpc/default/caller that subscribes to typ (names;
// nil: all) and rejects the first push with message, as a proxy whose
// validation fails would; it returns the version rejected. The stream
// stays open, and the node connected, until the test ends.
func (m *mesh) nack(nodeID, typ string, names []string, message string) string {
	m.t.Helper()
	stream, err := m.adsClient().StreamAggregatedResources(m.t.Context())
	if err != nil {
		m.t.Fatal(err)
	}
	n := node(nodeID, workload.RoleGRPC, "caller")
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: n, TypeUrl: typ, ResourceNames: names}); err != nil {
		m.t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		m.t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: n, TypeUrl: typ, ResourceNames: names, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: message}}); err != nil {
		m.t.Fatal(err)
	}
	return resp.GetVersionInfo()
}

// node is a node that says who it is as every proxy must (envoy/README.md).
func node(id string, role workload.Role, name string) *corev3.Node {
	md, err := structpb.NewStruct(map[string]any{"bulkhead": map[string]any{"role": string(role), "namespace": "default", "name": name}})
	if err != nil {
		panic(err)
	}
	return &corev3.Node{Id: id, Metadata: md}
}
