package controlplane_test

import (
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bulkhead-mesh/bulkhead/internal/grpcbootstrap"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// BenchmarkMTLS measures what mTLS costs on the proxyless path, both ends
// programmed by the control plane: Service "plain" (no SecurityPolicy) and
// Service "strict" (mTLS STRICT), each one xDS-enabled server on loopback.
//   - handshake: a new connection, its handshake and one call, per op;
//   - steady: calls on an established connection through the xDS client,
//     32 in parallel; p99 reported.
func BenchmarkMTLS(b *testing.B) {
	meshCA := newCA(b, "bench root")
	files := map[string]string{}
	backends := map[string]net.Listener{}
	for _, name := range []string{"plain", "strict"} {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		backends[name] = lis
		be := &backend{name: name, addr: lis.Addr().(*net.TCPAddr)}
		files[name+".yaml"] = service(name, 9000, be)
	}
	policy := `apiVersion: mesh.bulkhead.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: strict}
spec:
  targetRefs: [{group: "", kind: Service, name: strict}]
  mtls: {mode: STRICT}
`
	files["policy.yaml"] = policy
	cp := startMesh(b, files).cp
	ctx := b.Context()
	for name, lis := range backends {
		certs := meshCA.issue(b, workload.SPIFFEID("default", name), time.Now().Add(time.Hour), meshCA)
		bs, err := grpcbootstrap.JSON(grpcbootstrap.Options{NodeID: name, Proxy: workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: name}, XDSAddress: cp.XDSAddr(), Certificates: certs})
		if err != nil {
			b.Fatal(err)
		}
		serveXDS(b, lis, bs, &backend{name: name})
	}

	clientCerts := meshCA.issue(b, workload.SPIFFEID("default", "bench"), time.Now().Add(time.Hour), meshCA)
	clientFiles := pki.CertFiles{Certificate: clientCerts.Certificate, PrivateKey: clientCerts.PrivateKey, CA: clientCerts.CA}
	tlsConf, err := provision.OperatorTLS(clientFiles)
	if err != nil {
		b.Fatal(err)
	}

	for _, name := range []string{"plain", "strict"} {
		creds := insecure.NewCredentials()
		if name == "strict" {
			creds = credentials.NewTLS(tlsConf)
		}
		addr := backends[name].Addr().String()
		b.Run("handshake/"+name, func(b *testing.B) {
			for b.Loop() {
				cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
					b.Fatal(err)
				}
				cc.Close()
			}
		})
	}
	for _, name := range []string{"plain", "strict"} {
		cc, err := provision.MeshClient{XDSAddress: cp.XDSAddr(), NodeID: "bench-" + name, Name: "bench", Account: "bench", Certs: clientFiles}.Dial(name)
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		c := healthpb.NewHealthClient(cc)
		if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
			b.Fatal(err)
		}
		b.Run("steady/"+name, func(b *testing.B) {
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(16) // 32 goroutines on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					t0 := time.Now()
					if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}
