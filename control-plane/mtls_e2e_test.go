package controlplane_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"

	"github.com/bulkhead-mesh/bulkhead/internal/grpcbootstrap"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// ca is a test certificate authority.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t testing.TB, name string) *ca {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &ca{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a workload certificate for a SPIFFE ID, valid in
// [notBefore, notAfter], with the trust bundle trust, into a new directory.
func (c *ca) issue(t testing.TB, spiffeID string, notAfter time.Time, trust *ca, ips ...net.IP) *grpcbootstrap.CertificateFiles {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse(spiffeID)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, URIs: []*url.URL{u}, IPAddresses: ips,
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	f := &grpcbootstrap.CertificateFiles{
		Certificate: filepath.Join(dir, "cert.pem"), PrivateKey: filepath.Join(dir, "key.pem"), CA: filepath.Join(dir, "ca.pem"),
		RefreshInterval: 100 * time.Millisecond,
	}
	for path, b := range map[string][]byte{
		f.Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		f.PrivateKey:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
		f.CA:          trust.pem,
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// meshClient dials a Service as the proxyless application name, with its
// workload certificate.
func (m *mesh) meshClient(name, target string, certs *grpcbootstrap.CertificateFiles) healthpb.HealthClient {
	m.t.Helper()
	bs, err := grpcbootstrap.JSON(grpcbootstrap.Options{
		NodeID: name + "-" + m.t.Name(), Proxy: workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: name},
		XDSAddress: m.cp.XDSAddr(), Certificates: certs,
	})
	if err != nil {
		m.t.Fatal(err)
	}
	r, err := xds.NewXDSResolverWithConfigForTesting(bs)
	if err != nil {
		m.t.Fatal(err)
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		m.t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+target, grpc.WithResolvers(r), grpc.WithTransportCredentials(creds))
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

const strictEcho = `apiVersion: mesh.bulkhead.dev/v1alpha1
kind: SecurityPolicy
metadata: {name: echo}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
  mtls: {mode: STRICT}
  authorization:
    defaultAction: Deny
    rules:
    - name: chat-checks
      action: Allow
      principals: [spiffe://bulkhead.local/ns/default/sa/chat]
      methods: [/grpc.health.v1.Health/Check]
`

// STRICT mTLS and authorization between proxyless applications, both ends
// programmed by the control plane from a SecurityPolicy: the allowed
// principal is served; another principal gets PERMISSION_DENIED; a
// plaintext client, a certificate of a foreign CA and an expired
// certificate are refused at the handshake.
func TestStrictMTLSAndAuthorization(t *testing.T) {
	meshCA, foreign := newCA(t, "bulkhead test root"), newCA(t, "someone else")
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: "echo", addr: lis.Addr().(*net.TCPAddr)}
	m := startMesh(t, map[string]string{"echo.yaml": service("echo", 9000, b), "security.yaml": strictEcho})

	serverCerts := meshCA.issue(t, workload.SPIFFEID("default", "echo"), time.Now().Add(time.Hour), meshCA)
	bs, err := grpcbootstrap.JSON(grpcbootstrap.Options{NodeID: "echo-1", Proxy: workload.ProxyID{Role: workload.RoleGRPC, Namespace: "default", Name: "echo"},
		XDSAddress: m.cp.XDSAddr(), Certificates: serverCerts})
	if err != nil {
		t.Fatal(err)
	}
	serveXDS(t, lis, bs, b)

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	check := func(c healthpb.HealthClient) error {
		_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	eventuallyCode := func(what string, c healthpb.HealthClient, want codes.Code) {
		t.Helper()
		var err error
		testenv.Eventually(t, 10*time.Second, what, func() error {
			err = check(c)
			return testenv.Until(status.Code(err) == want, "the call ended with %v; want %s", err, want)
		})
	}

	chat := m.meshClient("chat", "echo.default:9000", meshCA.issue(t, workload.SPIFFEID("default", "chat"), time.Now().Add(time.Hour), meshCA))
	eventuallyCode("the allowed principal is served", chat, codes.OK)

	intruder := m.meshClient("intruder", "echo.default:9000", meshCA.issue(t, workload.SPIFFEID("default", "intruder"), time.Now().Add(time.Hour), meshCA))
	eventuallyCode("another principal is denied", intruder, codes.PermissionDenied)

	// The allowed principal, on a method no rule allows: denied.
	if _, err := chat.List(ctx, &healthpb.HealthListRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("chat calling Health/List: %v; want PERMISSION_DENIED", err)
	}

	// A plaintext client, dialling the server directly: refused.
	plain, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := healthpb.NewHealthClient(plain).Check(short, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("plaintext client: %v; want refused", err)
	}

	// A certificate from a foreign CA (trusting the mesh's), and an
	// expired one: refused at the handshake, never reaching RBAC.
	for what, certs := range map[string]*grpcbootstrap.CertificateFiles{
		"foreign CA": foreign.issue(t, workload.SPIFFEID("default", "chat"), time.Now().Add(time.Hour), meshCA),
		"expired":    meshCA.issue(t, workload.SPIFFEID("default", "chat"), time.Now().Add(-time.Minute), meshCA),
	} {
		c := m.meshClient("chat", "echo.default:9000", certs)
		short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
		_, err := c.Check(short, &healthpb.HealthCheckRequest{})
		cancelShort()
		if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
			t.Errorf("%s: %v; want the handshake refused", what, err)
		}
	}
	if n := b.calls.Load(); n != 1 {
		t.Errorf("the backend saw %d calls; want only the allowed one", n)
	}
}
