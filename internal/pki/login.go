package pki

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	vault "github.com/hashicorp/vault/api"
)

// VaultConfig is how a workload logs in to Vault: AppRole locally (the
// role id is not secret; the secret id is read from a file that only the
// workload's user can read), or Vault's Kubernetes auth in a cluster.
type VaultConfig struct {
	// Address of Vault (default $VAULT_ADDR).
	Address string
	// RoleID of the workload's AppRole.
	RoleID string
	// SecretIDFile holds the AppRole secret id.
	SecretIDFile string
	// KVMount is the KV v2 mount (default "secret").
	KVMount string
	// KubernetesRole, when set, logs in with Vault's Kubernetes auth
	// (in a cluster) instead of AppRole: the service account token in
	// KubernetesTokenFile (default the projected token's path) for this
	// Vault role.
	KubernetesRole      string
	KubernetesTokenFile string
}

// DefaultKubernetesTokenFile is where a pod's service account token is.
const DefaultKubernetesTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// Login logs in with the workload's AppRole (or, in a cluster, its
// Kubernetes service account) and returns a client with a fresh token.
// Each use of Vault logs in again (secrets at start, each certificate,
// each database user), so there is no long-lived token to renew or lose.
func Login(ctx context.Context, vc VaultConfig) (*vault.Client, error) {
	if vc.KubernetesRole != "" {
		return kubernetesLogin(ctx, vc)
	}
	return appRoleLogin(ctx, vc)
}

// Client is a Vault client with a token (an operator's: provisioning,
// tools).
func Client(addr, token string) (*vault.Client, error) {
	conf := vault.DefaultConfig()
	conf.Address = addr
	c, err := vault.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	c.SetToken(token)
	return c, nil
}

// Revoke ends a login token once its work is done, rather than leave it
// valid until its TTL. (Never the token behind a database lease: revoking
// it drops the database user.)
func Revoke(ctx context.Context, c *vault.Client, log *slog.Logger) {
	if err := c.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
		log.Warn("vault: revoking the login token", "error", err)
	}
}

func newLoginClient(vc VaultConfig) (*vault.Client, error) {
	if vc.Address == "" {
		vc.Address = os.Getenv("VAULT_ADDR")
	}
	if vc.Address == "" {
		return nil, errors.New("--vault-address (or VAULT_ADDR) is required: every secret comes from Vault")
	}
	conf := vault.DefaultConfig()
	conf.Address = vc.Address
	conf.MaxRetries = 0
	client, err := vault.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	client.ClearToken()
	return client, nil
}

func kubernetesLogin(ctx context.Context, vc VaultConfig) (*vault.Client, error) {
	path := vc.KubernetesTokenFile
	if path == "" {
		path = DefaultKubernetesTokenFile
	}
	jwt, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vault kubernetes login: service account token: %w", err)
	}
	client, err := newLoginClient(vc)
	if err != nil {
		return nil, err
	}
	login, err := client.Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{
		"role": vc.KubernetesRole, "jwt": strings.TrimSpace(string(jwt)),
	})
	if err != nil {
		return nil, fmt.Errorf("vault kubernetes login at %s (role %s): %w", client.Address(), vc.KubernetesRole, err)
	}
	if login == nil || login.Auth == nil {
		return nil, fmt.Errorf("vault kubernetes login at %s: no token in the answer", client.Address())
	}
	client.SetToken(login.Auth.ClientToken)
	return client, nil
}

func appRoleLogin(ctx context.Context, vc VaultConfig) (*vault.Client, error) {
	client, err := newLoginClient(vc)
	if err != nil {
		return nil, err
	}
	if vc.RoleID == "" || vc.SecretIDFile == "" {
		return nil, errors.New("--vault-role-id and --vault-secret-id-file are required (the service's AppRole)")
	}
	secretID, err := os.ReadFile(vc.SecretIDFile)
	if err != nil {
		return nil, fmt.Errorf("vault secret id: %w", err)
	}
	login, err := client.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
		"role_id":   vc.RoleID,
		"secret_id": strings.TrimSpace(string(secretID)),
	})
	if err != nil {
		return nil, fmt.Errorf("vault AppRole login at %s: %w", client.Address(), err)
	}
	if login == nil || login.Auth == nil {
		return nil, fmt.Errorf("vault AppRole login at %s: no token in the answer", client.Address())
	}
	client.SetToken(login.Auth.ClientToken)
	return client, nil
}
