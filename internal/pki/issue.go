package pki

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// Issued is a certificate issued by Vault's PKI, with its key and the
// mesh's trust bundle (PEM).
type Issued struct {
	Certificate string
	// Chain is the issuing CA ("" when Vault gives none).
	Chain       string
	PrivateKey  string
	TrustBundle string
	Serial      string
	NotAfter    time.Time
}

// IssueCert issues a certificate for spiffeID (and other SANs: IP
// addresses, or DNS names where the role allows them) through a PKI role of
// the intermediate, with the trust bundle (the root CA).
func IssueCert(ctx context.Context, v *vault.Client, role, spiffeID string, ttl time.Duration, sans ...string) (*Issued, error) {
	req := map[string]any{"uri_sans": spiffeID, "ttl": ttl.String()}
	var ips, names []string
	for _, s := range sans {
		if net.ParseIP(s) != nil {
			ips = append(ips, s)
		} else {
			names = append(names, s)
		}
	}
	if len(ips) > 0 {
		req["ip_sans"] = strings.Join(ips, ",")
	}
	if len(names) > 0 {
		// The first name is the common name too (Vault requires one for
		// alt_names under a role that allows them).
		req["common_name"] = names[0]
		req["alt_names"] = strings.Join(names, ",")
	}
	s, err := v.Logical().WriteWithContext(ctx, bhvault.IntermediateMount+"/issue/"+role, req)
	if err != nil {
		return nil, fmt.Errorf("vault: issue the certificate of %s: %w", spiffeID, err)
	}
	root, err := v.Logical().ReadWithContext(ctx, bhvault.RootMount+"/cert/ca")
	if err != nil || root == nil {
		return nil, fmt.Errorf("vault: read the trust bundle: %v", err)
	}
	out := &Issued{Certificate: fmt.Sprint(s.Data["certificate"]), PrivateKey: fmt.Sprint(s.Data["private_key"]), TrustBundle: fmt.Sprint(root.Data["certificate"])}
	if ica, ok := s.Data["issuing_ca"].(string); ok {
		out.Chain = ica
	}
	block, _ := pem.Decode([]byte(out.Certificate))
	if block == nil {
		return nil, fmt.Errorf("vault: the certificate of %s is not PEM", spiffeID)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("vault: the certificate of %s: %w", spiffeID, err)
	}
	out.Serial, out.NotAfter = cert.SerialNumber.Text(16), cert.NotAfter
	return out, nil
}

// FullChain is the certificate followed by its issuing CA.
func (i *Issued) FullChain() string {
	out := strings.TrimSpace(i.Certificate) + "\n"
	if i.Chain != "" {
		out += strings.TrimSpace(i.Chain) + "\n"
	}
	return out
}

// Write writes it where a workload reads it.
func (i *Issued) Write(f CertFiles) error {
	var chain []string
	if i.Chain != "" {
		chain = []string{i.Chain}
	}
	return WriteCert(f, i.Certificate, chain, i.PrivateKey, i.TrustBundle)
}

// RenewAt is when to renew it: two thirds into its life, counted from now
// (Vault back-dates NotBefore by 30 s against clock skew).
func (i *Issued) RenewAt() time.Time {
	now := time.Now()
	return now.Add(i.NotAfter.Sub(now) * 2 / 3)
}
