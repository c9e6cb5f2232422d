package controlplane_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/structpb"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/internal/grpcbootstrap"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// adsNode is a node as it says who it is.
func adsNode(id, role, name string) *corev3.Node {
	md, _ := structpb.NewStruct(map[string]any{"bulkhead": map[string]any{"role": role, "namespace": "default", "name": name}})
	return &corev3.Node{Id: id, Metadata: md}
}

// firstListeners opens an ADS stream on cc as node and returns the first
// answer to a Listener request, or the stream's error.
func firstListeners(ctx context.Context, cc *grpc.ClientConn, node *corev3.Node) (*discoveryv3.DiscoveryResponse, error) {
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ListenerType}); err != nil {
		return nil, err
	}
	return st.Recv()
}

// Production mode: the xDS connection is mTLS, and a node is admitted only
// when its certificate proves the identity it claims.
func TestXDSConnectionMTLSAndNodeProof(t *testing.T) {
	meshCA := newCA(t, "bulkhead test root")
	cpCerts := meshCA.issue(t, workload.SPIFFEID("default", "control-plane"), time.Now().Add(time.Hour), meshCA, net.IPv4(127, 0, 0, 1))
	b := startBackend(t, "echo")
	dir := t.TempDir()
	m := &mesh{t: t, dir: dir}
	m.write("echo.yaml", service("echo", 9000, b))
	cp, err := controlplane.Start(t.Context(), controlplane.Options{
		ConfigDirs: []string{dir}, XDSAddress: "127.0.0.1:0",
		TLS: &controlplane.TLSFiles{Certificate: cpCerts.Certificate, PrivateKey: cpCerts.PrivateKey, CA: cpCerts.CA},
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Stop() })
	m.cp = cp
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	tlsConn := func(certs *grpcbootstrap.CertificateFiles) *grpc.ClientConn {
		conf, err := provision.OperatorTLS(pki.CertFiles{Certificate: certs.Certificate, PrivateKey: certs.PrivateKey, CA: certs.CA})
		if err != nil {
			t.Fatal(err)
		}
		cc, err := grpc.NewClient(cp.XDSAddr(), grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	callerCerts := meshCA.issue(t, workload.SPIFFEID("default", "caller"), time.Now().Add(time.Hour), meshCA)

	// Proven: its certificate says caller, it claims grpc/default/caller.
	if _, err := firstListeners(ctx, tlsConn(callerCerts), adsNode("caller-1", "grpc", "caller")); err != nil {
		t.Fatalf("proven node: %v", err)
	}
	// An impostor: a valid mesh certificate (chat), claiming caller.
	chatCerts := meshCA.issue(t, workload.SPIFFEID("default", "chat"), time.Now().Add(time.Hour), meshCA)
	if _, err := firstListeners(ctx, tlsConn(chatCerts), adsNode("chat-1", "grpc", "caller")); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("node claiming another identity: %v; want PERMISSION_DENIED", err)
	}
	// An Envoy gateway must prove gateway-NAME.
	if _, err := firstListeners(ctx, tlsConn(chatCerts), adsNode("gw-1", "gateway", "ai")); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("gateway node with a workload certificate: %v; want PERMISSION_DENIED", err)
	}
	// Plaintext, and TLS without a client certificate: refused at the handshake.
	plain, err := grpc.NewClient(cp.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if _, err := firstListeners(short, plain, adsNode("x", "grpc", "caller")); err == nil {
		t.Fatal("a plaintext xDS client was served")
	}
	noCert, err := grpc.NewClient(cp.XDSAddr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		t.Fatal(err)
	}
	defer noCert.Close()
	if _, err := firstListeners(short, noCert, adsNode("x", "grpc", "caller")); err == nil {
		t.Fatal("an xDS client without a certificate was served")
	}

	// grpc-go's own xDS client over the mTLS connection (bootstrap channel
	// credentials "tls"), proven, routes a real call.
	bs, err := grpcbootstrap.JSON(grpcbootstrap.Options{NodeID: "caller-2", Proxy: workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "caller"},
		XDSAddress: cp.XDSAddr(), Certificates: callerCerts, XDSTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := xds.NewXDSResolverWithConfigForTesting(bs)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///echo.default:9000", grpc.WithResolvers(r), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("call through the mTLS-programmed client: %v", err)
	}
}

// caIssuer issues workload certificates from the test CA (Vault's PKI in
// the platform).
type caIssuer struct {
	t  testing.TB
	ca *ca
}

func (i caIssuer) Issue(_ context.Context, spiffeID string) (*pki.Issued, error) {
	f := i.ca.issue(i.t, spiffeID, time.Now().Add(time.Hour), i.ca)
	read := func(p string) string { b, _ := os.ReadFile(p); return string(b) }
	return &pki.Issued{Certificate: read(f.Certificate), PrivateKey: read(f.PrivateKey), TrustBundle: read(f.CA), NotAfter: time.Now().Add(time.Hour)}, nil
}

// secretsOf opens an ADS stream as node and asks for the SDS secrets; it
// returns them, or nil when nothing comes within wait.
func secretsOf(ctx context.Context, cc *grpc.ClientConn, node *corev3.Node, wait time.Duration) ([]*tlsv3.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.SecretType, ResourceNames: []string{ir.WorkloadSecret, ir.TrustBundleSecret}}); err != nil {
		return nil, err
	}
	resp, err := st.Recv()
	if status.Code(err) == codes.DeadlineExceeded {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*tlsv3.Secret
	for _, a := range resp.GetResources() {
		s := &tlsv3.Secret{}
		if err := a.UnmarshalTo(s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// SDS: a proven Envoy node gets its workload certificate and the trust
// bundle; an impostor gets refused; without the mTLS xDS connection
// (development mode) no node ever gets a secret.
func TestSDSOnlyToProvenNodes(t *testing.T) {
	meshCA := newCA(t, "bulkhead test root")
	cpCerts := meshCA.issue(t, workload.SPIFFEID("default", "control-plane"), time.Now().Add(time.Hour), meshCA, net.IPv4(127, 0, 0, 1))
	gw := `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ai}
spec:
  gatewayClassName: bulkhead
  listeners: [{name: http, protocol: HTTP, port: 8080}]
`
	start := func(tlsFiles *controlplane.TLSFiles) *controlplane.ControlPlane {
		dir := t.TempDir()
		m := &mesh{t: t, dir: dir}
		m.write("gw.yaml", gw)
		cp, err := controlplane.Start(t.Context(), controlplane.Options{
			ConfigDirs: []string{dir}, XDSAddress: "127.0.0.1:0", TLS: tlsFiles, Issuer: caIssuer{t, meshCA},
			Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError})),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cp.Stop() })
		return cp
	}
	secure := start(&controlplane.TLSFiles{Certificate: cpCerts.Certificate, PrivateKey: cpCerts.PrivateKey, CA: cpCerts.CA})
	conn := func(addr string, certs *grpcbootstrap.CertificateFiles) *grpc.ClientConn {
		creds := insecure.NewCredentials()
		if certs != nil {
			conf, err := provision.OperatorTLS(pki.CertFiles{Certificate: certs.Certificate, PrivateKey: certs.PrivateKey, CA: certs.CA})
			if err != nil {
				t.Fatal(err)
			}
			creds = credentials.NewTLS(conf)
		}
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	ctx := t.Context()
	gwCerts := meshCA.issue(t, workload.SPIFFEID("default", "gateway-ai"), time.Now().Add(time.Hour), meshCA)
	got, err := secretsOf(ctx, conn(secure.XDSAddr(), gwCerts), adsNode("ai-1", "gateway", "ai"), 10*time.Second)
	if err != nil || len(got) != 2 {
		t.Fatalf("proven gateway: %d secrets, %v; want the workload certificate and the trust bundle", len(got), err)
	}
	for _, s := range got {
		if s.GetName() == ir.WorkloadSecret {
			c := s.GetTlsCertificate()
			block, _ := pem.Decode([]byte(c.GetCertificateChain().GetInlineString()))
			leaf, err := x509.ParseCertificate(block.Bytes)
			if err != nil || len(leaf.URIs) != 1 || leaf.URIs[0].String() != workload.SPIFFEID("default", "gateway-ai") || c.GetPrivateKey().GetInlineString() == "" {
				t.Fatalf("workload secret: %v %v", leaf, err)
			}
		}
	}
	// The config dump never shows a key.
	res, _ := secure.XDS().Published(workload.ProxyID{Role: workload.RoleGateway, Namespace: "default", Name: "ai"})
	dump, _ := res.JSON()
	if strings.Contains(string(dump), "PRIVATE KEY") || !strings.Contains(string(dump), `"redacted"`) {
		t.Fatalf("config dump shows secrets: %s", dump)
	}
	// A workload certificate claiming the gateway: refused, no secret.
	chatCerts := meshCA.issue(t, workload.SPIFFEID("default", "chat"), time.Now().Add(time.Hour), meshCA)
	if _, err := secretsOf(ctx, conn(secure.XDSAddr(), chatCerts), adsNode("x", "gateway", "ai"), 10*time.Second); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("impostor asking for the gateway's secrets: %v; want PERMISSION_DENIED", err)
	}
	// Development mode (plaintext xDS, nothing proven): no secret, ever.
	dev := start(nil)
	got, err = secretsOf(ctx, conn(dev.XDSAddr(), nil), adsNode("ai-2", "gateway", "ai"), 2*time.Second)
	if err != nil || len(got) != 0 {
		t.Fatalf("unproven gateway in development mode: %d secrets, %v; want none", len(got), err)
	}
}
