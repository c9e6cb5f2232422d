package provision

import (
	"context"
	"fmt"

	vault "github.com/hashicorp/vault/api"
)

// KubernetesAuth is how Vault verifies the services' Kubernetes service
// account tokens (the kind deployment): the API server, its CA, and a
// token allowed to review tokens (system:auth-delegator).
type KubernetesAuth struct {
	Host, CAPEM, ReviewerJWT string
	// Namespace of the services' service accounts (default "default").
	Namespace string
}

// setupKubernetesAuth enables Vault's Kubernetes auth method and gives each
// service a role bound to its service account (same name), with the same
// policy as its AppRole.
func setupKubernetesAuth(ctx context.Context, v *vault.Client, k *KubernetesAuth, services []string) error {
	auths, err := v.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("provision: vault: %w", err)
	}
	if _, ok := auths["kubernetes/"]; !ok {
		if err := v.Sys().EnableAuthWithOptionsWithContext(ctx, "kubernetes", &vault.EnableAuthOptions{Type: "kubernetes"}); err != nil {
			return fmt.Errorf("provision: vault: enable kubernetes auth: %w", err)
		}
	}
	if _, err := v.Logical().WriteWithContext(ctx, "auth/kubernetes/config", map[string]any{
		"kubernetes_host":      k.Host,
		"kubernetes_ca_cert":   k.CAPEM,
		"token_reviewer_jwt":   k.ReviewerJWT,
		"disable_local_ca_jwt": true,
	}); err != nil {
		return fmt.Errorf("provision: vault kubernetes auth config: %w", err)
	}
	ns := k.Namespace
	if ns == "" {
		ns = "default"
	}
	for _, svc := range services {
		if _, err := v.Logical().WriteWithContext(ctx, "auth/kubernetes/role/"+svc, map[string]any{
			"bound_service_account_names":      svc,
			"bound_service_account_namespaces": ns,
			"token_policies":                   "bulkhead-" + svc,
			"token_ttl":                        "1h",
			"token_max_ttl":                    "4h",
		}); err != nil {
			return fmt.Errorf("provision: vault kubernetes role %s: %w", svc, err)
		}
	}
	return nil
}
