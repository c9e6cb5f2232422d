package provision

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/xds"

	"github.com/bulkhead-mesh/bulkhead/internal/grpcbootstrap"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// MeshClient is a proxyless application's view of the mesh, for tools
// and tests: who it is (Name, Account: the identity its certificate
// proves), its workload certificate, and whether the xDS connection itself
// is mTLS (production mode).
type MeshClient struct {
	XDSAddress, NodeID string
	Name, Account      string
	// Namespace of the client and of the Services it dials (default
	// "default").
	Namespace string
	Certs     pki.CertFiles
	XDSTLS    bool
}

func (m MeshClient) namespace() string {
	if m.Namespace == "" {
		return "default"
	}
	return m.Namespace
}

// Operator is the operator's MeshClient (bulkhead up, the tests).
func Operator(xdsAddr, nodeID string, certs pki.CertFiles, xdsTLS bool) MeshClient {
	return MeshClient{XDSAddress: xdsAddr, NodeID: nodeID, Name: "operator", Account: "operator", Certs: certs, XDSTLS: xdsTLS}
}

// Dial connects to a Service through the mesh.
func (m MeshClient) Dial(service string) (*grpc.ClientConn, error) {
	bs, err := grpcbootstrap.JSON(grpcbootstrap.Options{
		NodeID:         m.NodeID,
		Proxy:          workload.ProxyID{Role: workload.RoleGRPC, Namespace: m.namespace(), Name: m.Name},
		ServiceAccount: m.Account,
		XDSAddress:     m.XDSAddress,
		Certificates:   &grpcbootstrap.CertificateFiles{Certificate: m.Certs.Certificate, PrivateKey: m.Certs.PrivateKey, CA: m.Certs.CA},
		XDSTLS:         m.XDSTLS,
	})
	if err != nil {
		return nil, err
	}
	r, err := xds.NewXDSResolverWithConfigForTesting(bs)
	if err != nil {
		return nil, err
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(fmt.Sprintf("xds:///%s.%s:%d", service, m.namespace(), 9000), grpc.WithResolvers(r), grpc.WithTransportCredentials(creds))
}

// OperatorTLS is the operator's mTLS client configuration for a direct
// connection to one workload (a readiness probe): its certificate, and a
// server certificate that chains to the mesh's root and carries a SPIFFE
// ID of the trust domain (workload certificates have no DNS names, so the
// usual host name check does not apply).
func OperatorTLS(certs pki.CertFiles) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certs.Certificate, certs.PrivateKey)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(certs.CA)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificate", certs.CA)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS12,
		// Verified below, against the mesh's root and trust domain.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no server certificate")
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			inter := x509.NewCertPool()
			for _, r := range raw[1:] {
				if c, err := x509.ParseCertificate(r); err == nil {
					inter.AddCert(c)
				}
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return err
			}
			for _, u := range leaf.URIs {
				if strings.HasPrefix(u.String(), workload.TrustDomainPrefix) {
					return nil
				}
			}
			return fmt.Errorf("server certificate has no SPIFFE ID of %s", workload.TrustDomain)
		},
	}, nil
}
