package controlplane_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/xds"

	"github.com/bulkhead-mesh/bulkhead/internal/grpcbootstrap"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// An xDS-enabled gRPC server gets its inbound listener from the control
// plane, goes SERVING, and serves a proxyless client: both ends of the call
// are programmed by the control plane.
func TestXDSEnabledServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: "xds-server", addr: lis.Addr().(*net.TCPAddr)}
	m := startMesh(t, map[string]string{"echo.yaml": service("echo", 9000, b)})

	bs, err := grpcbootstrap.JSON(grpcbootstrap.Options{
		NodeID:     "echo-1",
		Proxy:      workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "echo"},
		XDSAddress: m.cp.XDSAddr(),
	})
	if err != nil {
		t.Fatal(err)
	}
	serveXDS(t, lis, bs, b)
	c := m.client("echo.default:9000")
	if got := count(t, c, 5); got["xds-server"] != 5 {
		t.Fatalf("calls served by %v; want all by the xDS-enabled server", got)
	}
}

// serveXDS runs an xDS-enabled gRPC server on lis that answers Health with
// b, with the xDS credentials (mTLS when its listener says so), and waits
// until the control plane has programmed its inbound listener. It stops
// with the test.
func serveXDS(t testing.TB, lis net.Listener, bs []byte, b *backend) {
	t.Helper()
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	serving := make(chan error, 4)
	srv, err := xds.NewGRPCServer(
		grpc.Creds(creds),
		xds.BootstrapContentsForTesting(bs),
		xds.ServingModeCallback(func(_ net.Addr, args xds.ServingModeChangeArgs) {
			err := args.Err
			if args.Mode == connectivity.ServingModeServing {
				err = nil
			} else if err == nil {
				err = errors.New("not serving")
			}
			select {
			case serving <- err:
			default:
			}
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	healthpb.RegisterHealthServer(srv, b)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	select {
	case err := <-serving:
		if err != nil {
			t.Fatalf("server went not-serving: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the xDS-enabled server did not get its listener within 15s")
	}
}
