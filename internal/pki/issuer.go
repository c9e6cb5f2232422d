package pki

import (
	"context"
	"fmt"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/bulkhead-mesh/bulkhead/internal/workload"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// Issuer issues workload certificates. The control plane asks it only for
// the identities of the Envoy nodes it serves, and serves the result (SDS)
// only to nodes that proved those identities.
type Issuer interface {
	Issue(ctx context.Context, spiffeID string) (*Issued, error)
}

// VaultIssuer issues the certificates the control plane serves over SDS,
// from Vault's PKI (role envoy-sds), with the control plane's own token
// (its AppRole in the platform).
type VaultIssuer struct {
	// Client with a token allowed to issue; or Login, which gives one for
	// each issue (a long-running control plane logs in with its AppRole
	// each time rather than keep a token that expires).
	Client *vault.Client
	Login  func(context.Context) (*vault.Client, error)
	TTL    time.Duration
}

var _ Issuer = VaultIssuer{}

// Issue implements Issuer.
func (i VaultIssuer) Issue(ctx context.Context, spiffeID string) (*Issued, error) {
	if !strings.HasPrefix(spiffeID, workload.TrustDomainPrefix) {
		return nil, fmt.Errorf("%q is not an identity of %s", spiffeID, workload.TrustDomain)
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
	return IssueCert(ctx, c, bhvault.EnvoyIssuerRole, spiffeID, ttl)
}
