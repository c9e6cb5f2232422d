package provision

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
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

// workloadRole lets one identity have certificates with exactly its SPIFFE
// ID.
func workloadRole(ctx context.Context, v *vault.Client, account string) error {
	return pkiRole(ctx, v, account, ir.SPIFFEID("default", account))
}

// pkiRole writes a PKI role whose certificates carry only URI SANs
// matching allowedURISANs (and IP SANs when asked).
func pkiRole(ctx context.Context, v *vault.Client, role, allowedURISANs string) error {
	_, err := v.Logical().WriteWithContext(ctx, bhvault.IntermediateMount+"/roles/"+role, map[string]any{
		"allowed_uri_sans":   allowedURISANs,
		"allow_any_name":     false,
		"allowed_domains":    "",
		"allow_bare_domains": false,
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

// CertFiles are a workload certificate's PEM files, in one directory.
type CertFiles struct {
	Dir, Certificate, PrivateKey, CA string
}

// CertFilesIn names the files of a certificate directory.
func CertFilesIn(dir string) CertFiles {
	return CertFiles{Dir: dir, Certificate: filepath.Join(dir, "cert.pem"), PrivateKey: filepath.Join(dir, "key.pem"), CA: filepath.Join(dir, "ca.pem")}
}

// WriteCert writes an issued certificate (leaf then chain, key, trust
// bundle) atomically per file, mode 0600.
func WriteCert(f CertFiles, certificate string, chain []string, key, ca string) error {
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return err
	}
	full := strings.TrimSpace(certificate) + "\n"
	for _, c := range chain {
		full += strings.TrimSpace(c) + "\n"
	}
	// Key first, then its certificate: a reader between the two sees a pair
	// that does not match, which grpc-go's file_watcher skips.
	for _, w := range []struct{ path, body string }{{f.PrivateKey, key}, {f.Certificate, full}, {f.CA, ca}} {
		path, body := w.path, w.body
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(strings.TrimSpace(body)+"\n"), 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return nil
}

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

// IssueCert issues a certificate for spiffeID (and IP SANs) through a PKI
// role of the intermediate, with the trust bundle (the root CA).
func IssueCert(ctx context.Context, v *vault.Client, role, spiffeID string, ttl time.Duration, ipSANs ...string) (*Issued, error) {
	req := map[string]any{"uri_sans": spiffeID, "ttl": ttl.String()}
	if len(ipSANs) > 0 {
		req["ip_sans"] = strings.Join(ipSANs, ",")
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

// issueOperator issues the operator's certificate with the provisioning
// token.
func issueOperator(ctx context.Context, v *vault.Client, files CertFiles) error {
	iss, err := IssueCert(ctx, v, bhvault.Operator, ir.SPIFFEID("default", bhvault.Operator), bhvault.WorkloadTTL)
	if err != nil {
		return fmt.Errorf("provision: operator certificate: %w", err)
	}
	return iss.Write(files)
}

// IssueControlPlaneCert issues the control plane's serving certificate for
// the mTLS xDS connection: its SPIFFE ID, and 127.0.0.1 (clients check the
// host they dial). It returns when to renew it.
func IssueControlPlaneCert(ctx context.Context, v *vault.Client, files CertFiles) (time.Time, error) {
	iss, err := IssueCert(ctx, v, bhvault.EnvoyIssuerRole, ir.SPIFFEID("default", bhvault.ControlPlane), bhvault.WorkloadTTL, "127.0.0.1")
	if err != nil {
		return time.Time{}, fmt.Errorf("control plane certificate: %w", err)
	}
	if err := iss.Write(files); err != nil {
		return time.Time{}, err
	}
	return iss.RenewAt(), nil
}

// VaultClient is a Vault client with a token.
func VaultClient(addr, token string) (*vault.Client, error) { return connectVault(addr, token) }
