package provision_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// The control plane, logged in with its own AppRole, issues Envoy
// certificates from Vault's PKI, and can do nothing else.
func TestVaultIssuerWithTheControlPlaneAppRole(t *testing.T) {
	pg, rd, v := testenv.NewPostgres(t), testenv.NewRedis(t), testenv.NewVault(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := provision.Provision(ctx, provision.Options{
		PostgresAdminDSN: pg.DSN(), PostgresHost: pg.Host, PostgresPort: pg.Port,
		RedisAddr: rd.Addr, RedisPassword: rd.Password, VaultAddr: v.Addr, VaultToken: v.RootToken,
		Dir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	cred := res.Credentials[bhvault.ControlPlane]
	sid, _ := os.ReadFile(cred.SecretIDFile)
	conf := vault.DefaultConfig()
	conf.Address = v.Addr
	c, _ := vault.NewClient(conf)
	c.ClearToken()
	login, err := c.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": cred.RoleID, "secret_id": strings.TrimSpace(string(sid))})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(login.Auth.ClientToken)

	iss, err := pki.VaultIssuer{Client: c, TTL: 10 * time.Minute}.Issue(ctx, workload.SPIFFEID("default", "gateway-ai"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(iss.FullChain()))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil || len(leaf.URIs) != 1 || leaf.URIs[0].String() != workload.SPIFFEID("default", "gateway-ai") {
		t.Fatalf("issued %v %v", leaf, err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(iss.TrustBundle))
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM([]byte(iss.FullChain()))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("does not chain to the trust bundle: %v", err)
	}
	// As the control-plane binary does it: a fresh AppRole login per issue.
	loginIssuer := pki.VaultIssuer{Login: func(ctx context.Context) (*vault.Client, error) {
		return pki.Login(ctx, pki.VaultConfig{Address: v.Addr, RoleID: cred.RoleID, SecretIDFile: cred.SecretIDFile})
	}}
	if iss, err := loginIssuer.Issue(ctx, workload.SPIFFEID("default", "router-edge")); err != nil || !strings.Contains(iss.FullChain(), "BEGIN CERTIFICATE") {
		t.Fatalf("issue after an AppRole login: %v", err)
	}
	if _, err := (pki.VaultIssuer{Client: c}).Issue(ctx, "spiffe://elsewhere.org/ns/x/sa/y"); err == nil {
		t.Fatal("issued an identity of another trust domain")
	}
	// Least privilege: no service secret, no service PKI role.
	if _, err := c.KVv2("secret").Get(ctx, "bulkhead/auth"); err == nil {
		t.Fatal("the control plane read auth's secret")
	}
	if _, err := c.Logical().WriteWithContext(ctx, bhvault.IntermediateMount+"/issue/auth", map[string]any{"uri_sans": workload.SPIFFEID("default", "auth")}); err == nil {
		t.Fatal("the control plane used auth's PKI role")
	}
}
