package provision

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	vault "github.com/hashicorp/vault/api"

	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

func enableAppRole(ctx context.Context, v *vault.Client) error {
	auths, err := v.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("provision: vault: %w", err)
	}
	if _, ok := auths["approle/"]; ok {
		return nil
	}
	if err := v.Sys().EnableAuthWithOptionsWithContext(ctx, "approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
		return fmt.Errorf("provision: vault: enable approle: %w", err)
	}
	return nil
}

// appRoleFor writes the service's secret, its policy and its AppRole, and
// a fresh secret id into DIR/SERVICE.secret-id.
func appRoleFor(ctx context.Context, v *vault.Client, service string, secret map[string]any, dir string) (Credentials, error) {
	if _, err := v.KVv2("secret").Put(ctx, "bulkhead/"+service, secret); err != nil {
		return Credentials{}, fmt.Errorf("vault secret: %w", err)
	}
	policy, err := bhvault.Policy(service)
	if err != nil {
		return Credentials{}, err
	}
	name := "bulkhead-" + service
	if err := v.Sys().PutPolicyWithContext(ctx, name, policy); err != nil {
		return Credentials{}, fmt.Errorf("vault policy: %w", err)
	}
	role := "auth/approle/role/" + name
	if _, err := v.Logical().WriteWithContext(ctx, role, map[string]any{
		"token_policies": name,
		"token_ttl":      "1h",
		"token_max_ttl":  "4h",
		// The secret id lives as long as the service, which logs in again
		// for each certificate; it only works from this machine.
		"secret_id_ttl":         "0",
		"secret_id_bound_cidrs": "127.0.0.1/32",
		"token_bound_cidrs":     "127.0.0.1/32",
	}); err != nil {
		return Credentials{}, fmt.Errorf("vault approle: %w", err)
	}
	rid, err := v.Logical().ReadWithContext(ctx, role+"/role-id")
	if err != nil || rid == nil {
		return Credentials{}, fmt.Errorf("vault approle role id: %v", err)
	}
	sid, err := v.Logical().WriteWithContext(ctx, role+"/secret-id", nil)
	if err != nil || sid == nil {
		return Credentials{}, fmt.Errorf("vault approle secret id: %v", err)
	}
	path := filepath.Join(dir, service+".secret-id")
	if err := os.WriteFile(path, []byte(fmt.Sprint(sid.Data["secret_id"])), 0o600); err != nil {
		return Credentials{}, err
	}
	return Credentials{RoleID: strings.TrimSpace(fmt.Sprint(rid.Data["role_id"])), SecretIDFile: path}, nil
}
