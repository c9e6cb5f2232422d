package provision

import (
	"context"
	"errors"
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

// enableKV mounts the KV v2 engine at secret/ (a dev-mode Vault has it
// already; a server's storage starts without).
func enableKV(ctx context.Context, v *vault.Client) error {
	mounts, err := v.Sys().ListMountsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("provision: vault mounts: %w", err)
	}
	if _, ok := mounts["secret/"]; ok {
		return nil
	}
	if err := v.Sys().MountWithContext(ctx, "secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		return fmt.Errorf("provision: vault: mount secret/ (kv v2): %w", err)
	}
	return nil
}

// secretAndPolicy writes the service's secret and its policy.
func secretAndPolicy(ctx context.Context, v *vault.Client, service string, secret map[string]any) error {
	if _, err := v.KVv2("secret").Put(ctx, "bulkhead/"+service, secret); err != nil {
		return fmt.Errorf("vault secret: %w", err)
	}
	return putPolicy(ctx, v, service)
}

// putPolicy writes the identity's policy (vault/policies/NAME.hcl) as
// bulkhead-NAME.
func putPolicy(ctx context.Context, v *vault.Client, service string) error {
	policy, err := bhvault.Policy(service)
	if err != nil {
		return err
	}
	if err := v.Sys().PutPolicyWithContext(ctx, "bulkhead-"+service, policy); err != nil {
		return fmt.Errorf("vault policy: %w", err)
	}
	return nil
}

// existingSecret is the service's current secret (nil when there is none).
func existingSecret(ctx context.Context, v *vault.Client, service string) (map[string]any, error) {
	s, err := v.KVv2("secret").Get(ctx, "bulkhead/"+service)
	if errors.Is(err, vault.ErrSecretNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vault secret bulkhead/%s: %w", service, err)
	}
	return s.Data, nil
}

// appRoleFor writes the service's AppRole and a fresh secret id into
// DIR/SERVICE.secret-id (its policy is written already).
func appRoleFor(ctx context.Context, v *vault.Client, service string, dir string) (Credentials, error) {
	name := "bulkhead-" + service
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
