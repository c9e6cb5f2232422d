package provision

import (
	"context"
	"fmt"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// setupPKI makes the root and the intermediate CA (once) and returns the
// root certificate (the mesh's trust bundle).
func setupPKI(ctx context.Context, v *vault.Client) (string, error) {
	mounts, err := v.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return "", fmt.Errorf("provision: vault mounts: %w", err)
	}
	if _, ok := mounts[bhvault.RootMount+"/"]; !ok {
		if err := v.Sys().MountWithContext(ctx, bhvault.RootMount, &vault.MountInput{Type: "pki", Config: vault.MountConfigInput{MaxLeaseTTL: "87600h"}}); err != nil {
			return "", fmt.Errorf("provision: mount %s: %w", bhvault.RootMount, err)
		}
		if _, err := v.Logical().WriteWithContext(ctx, bhvault.RootMount+"/root/generate/internal", map[string]any{
			"common_name": "Bulkhead Root CA", "ttl": "87600h", "key_type": "ec", "key_bits": 256,
		}); err != nil {
			return "", fmt.Errorf("provision: root CA: %w", err)
		}
	}
	if _, ok := mounts[bhvault.IntermediateMount+"/"]; !ok {
		if err := v.Sys().MountWithContext(ctx, bhvault.IntermediateMount, &vault.MountInput{Type: "pki", Config: vault.MountConfigInput{MaxLeaseTTL: "43800h"}}); err != nil {
			return "", fmt.Errorf("provision: mount %s: %w", bhvault.IntermediateMount, err)
		}
		csr, err := v.Logical().WriteWithContext(ctx, bhvault.IntermediateMount+"/intermediate/generate/internal", map[string]any{
			"common_name": "Bulkhead Workload CA", "key_type": "ec", "key_bits": 256,
		})
		if err != nil {
			return "", fmt.Errorf("provision: intermediate CSR: %w", err)
		}
		signed, err := v.Logical().WriteWithContext(ctx, bhvault.RootMount+"/root/sign-intermediate", map[string]any{
			"csr": csr.Data["csr"], "format": "pem_bundle", "ttl": "43800h",
		})
		if err != nil {
			return "", fmt.Errorf("provision: sign the intermediate: %w", err)
		}
		if _, err := v.Logical().WriteWithContext(ctx, bhvault.IntermediateMount+"/intermediate/set-signed", map[string]any{
			"certificate": signed.Data["certificate"],
		}); err != nil {
			return "", fmt.Errorf("provision: set the intermediate: %w", err)
		}
	}
	root, err := v.Logical().ReadWithContext(ctx, bhvault.RootMount+"/cert/ca")
	if err != nil || root == nil {
		return "", fmt.Errorf("provision: read the root CA: %v", err)
	}
	return fmt.Sprint(root.Data["certificate"]), nil
}

// envoyIssuerRole lets the control plane issue workload certificates for
// any identity of the trust domain (the Envoy nodes it serves).
func envoyIssuerRole(ctx context.Context, v *vault.Client) error {
	return pkiRole(ctx, v, bhvault.EnvoyIssuerRole, workload.TrustDomainPrefix+"*")
}

// workloadRole lets one identity have certificates with exactly its SPIFFE
// ID.
func workloadRole(ctx context.Context, v *vault.Client, namespace, account string) error {
	return pkiRole(ctx, v, account, workload.SPIFFEID(namespace, account))
}

// pkiRole writes a PKI role whose certificates carry only URI SANs
// matching allowedURISANs (and IP SANs when asked), and DNS names only of
// dnsNames, exactly.
func pkiRole(ctx context.Context, v *vault.Client, role, allowedURISANs string, dnsNames ...string) error {
	_, err := v.Logical().WriteWithContext(ctx, bhvault.IntermediateMount+"/roles/"+role, map[string]any{
		"allowed_uri_sans":   allowedURISANs,
		"allow_any_name":     false,
		"allowed_domains":    strings.Join(dnsNames, ","),
		"allow_bare_domains": len(dnsNames) > 0,
		"allow_subdomains":   false,
		"allow_localhost":    false,
		"enforce_hostnames":  false,
		"require_cn":         false,
		"key_type":           "ec",
		"key_bits":           256,
		"max_ttl":            bhvault.WorkloadTTL.String(),
		"server_flag":        true,
		"client_flag":        true,
		"no_store":           true,
	})
	if err != nil {
		return fmt.Errorf("provision: PKI role %s: %w", role, err)
	}
	return nil
}

// issueOperator issues the operator's certificate with the provisioning
// token.
func issueOperator(ctx context.Context, v *vault.Client, namespace string, files pki.CertFiles) error {
	iss, err := pki.IssueCert(ctx, v, bhvault.Operator, workload.SPIFFEID(namespace, bhvault.Operator), bhvault.WorkloadTTL)
	if err != nil {
		return fmt.Errorf("provision: operator certificate: %w", err)
	}
	return iss.Write(files)
}

// IssueControlPlaneCert issues the control plane's serving certificate for
// the mTLS xDS connection: its SPIFFE ID, and 127.0.0.1 (clients check the
// host they dial). It returns when to renew it.
func IssueControlPlaneCert(ctx context.Context, v *vault.Client, files pki.CertFiles) (time.Time, error) {
	iss, err := pki.IssueCert(ctx, v, bhvault.EnvoyIssuerRole, workload.SPIFFEID("default", bhvault.ControlPlane), bhvault.WorkloadTTL, "127.0.0.1")
	if err != nil {
		return time.Time{}, fmt.Errorf("control plane certificate: %w", err)
	}
	if err := iss.Write(files); err != nil {
		return time.Time{}, err
	}
	return iss.RenewAt(), nil
}
