package provision

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/server"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// envoyIssuerRole lets the control plane issue workload certificates for
// any identity of the trust domain (the Envoy nodes it serves).
func envoyIssuerRole(ctx context.Context, v *vault.Client) error {
	return pkiRole(ctx, v, bhvault.EnvoyIssuerRole, ir.TrustDomainPrefix+"*")
}

// VaultIssuer issues the certificates the control plane serves over SDS,
// from Vault's PKI, with the control plane's own token (its AppRole in
// the platform).
type VaultIssuer struct {
	Client *vault.Client
	TTL    time.Duration
}

var _ server.Issuer = VaultIssuer{}

// Issue implements server.Issuer.
func (i VaultIssuer) Issue(ctx context.Context, spiffeID string) (*server.Issued, error) {
	if !strings.HasPrefix(spiffeID, ir.TrustDomainPrefix) {
		return nil, fmt.Errorf("%q is not an identity of %s", spiffeID, ir.TrustDomain)
	}
	ttl := i.TTL
	if ttl == 0 {
		ttl = time.Hour
	}
	s, err := i.Client.Logical().WriteWithContext(ctx, bhvault.IntermediateMount+"/issue/"+bhvault.EnvoyIssuerRole, map[string]any{
		"uri_sans": spiffeID, "ttl": ttl.String(),
	})
	if err != nil {
		return nil, fmt.Errorf("vault: issue %s: %w", spiffeID, err)
	}
	root, err := i.Client.Logical().ReadWithContext(ctx, bhvault.RootMount+"/cert/ca")
	if err != nil || root == nil {
		return nil, fmt.Errorf("vault: read the trust bundle: %v", err)
	}
	leaf := fmt.Sprint(s.Data["certificate"])
	block, _ := pem.Decode([]byte(leaf))
	if block == nil {
		return nil, errors.New("vault: the issued certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	chain := strings.TrimSpace(leaf) + "\n"
	if ica, ok := s.Data["issuing_ca"].(string); ok {
		chain += strings.TrimSpace(ica) + "\n"
	}
	return &server.Issued{CertificateChain: chain, PrivateKey: fmt.Sprint(s.Data["private_key"]), TrustBundle: fmt.Sprint(root.Data["certificate"]), NotAfter: cert.NotAfter}, nil
}
