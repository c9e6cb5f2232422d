package provision

import (
	"context"
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
	// Client with a token allowed to issue; or Login, which gives one for
	// each issue (a long-running control plane logs in with its AppRole
	// each time rather than keep a token that expires).
	Client *vault.Client
	Login  func(context.Context) (*vault.Client, error)
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
		ttl = bhvault.WorkloadTTL
	}
	c := i.Client
	if i.Login != nil {
		var err error
		if c, err = i.Login(ctx); err != nil {
			return nil, fmt.Errorf("vault login: %w", err)
		}
	}
	iss, err := IssueCert(ctx, c, bhvault.EnvoyIssuerRole, spiffeID, ttl)
	if err != nil {
		return nil, err
	}
	return &server.Issued{CertificateChain: iss.FullChain(), PrivateKey: iss.PrivateKey, TrustBundle: iss.TrustBundle, NotAfter: iss.NotAfter}, nil
}
