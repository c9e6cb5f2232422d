package provision

import (
	"context"
	"fmt"

	vault "github.com/hashicorp/vault/api"

	"github.com/bulkhead-mesh/bulkhead/internal/workload"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// KubernetesAuth is how Vault verifies the workloads' Kubernetes service
// account tokens (a cluster): the API server, its CA, and a token allowed
// to review tokens (system:auth-delegator). With CAPEM and ReviewerJWT both
// empty, Vault runs in the cluster and uses its own pod's service account
// (which then needs system:auth-delegator).
type KubernetesAuth struct {
	Host, CAPEM, ReviewerJWT string
	// ControlPlaneNamespace and ControlPlaneServiceAccount are where the
	// control plane runs (default: the workloads' namespace,
	// "bulkhead-control-plane"); ControlPlaneDNSNames are the names its
	// nodes dial (its Service), which its serving certificate carries.
	ControlPlaneNamespace      string
	ControlPlaneServiceAccount string
	ControlPlaneDNSNames       []string
}

// certAgentIdentities are the identities whose certificates a cert agent
// (`bulkhead cert-agent`) keeps beside a program that cannot read Vault
// (envoyproxy/ratelimit, Envoy), or a job of the operator's: each has its
// PKI role, its policy (vault/policies/NAME.hcl) and its Kubernetes role.
var certAgentIdentities = []string{bhvault.RateLimit, bhvault.Operator, "gateway-identity", "gateway-ai", "router-edge"}

// setupKubernetes enables Vault's Kubernetes auth method and gives each
// workload a Vault role bound to its service account (same name, in
// namespace), with its policy; the control plane's role also lets it issue
// its own serving certificate.
func setupKubernetes(ctx context.Context, v *vault.Client, k *KubernetesAuth, namespace string) error {
	auths, err := v.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("provision: vault: %w", err)
	}
	if _, ok := auths["kubernetes/"]; !ok {
		if err := v.Sys().EnableAuthWithOptionsWithContext(ctx, "kubernetes", &vault.EnableAuthOptions{Type: "kubernetes"}); err != nil {
			return fmt.Errorf("provision: vault: enable kubernetes auth: %w", err)
		}
	}
	conf := map[string]any{"kubernetes_host": k.Host}
	if k.CAPEM != "" || k.ReviewerJWT != "" {
		conf["kubernetes_ca_cert"] = k.CAPEM
		conf["token_reviewer_jwt"] = k.ReviewerJWT
		conf["disable_local_ca_jwt"] = true
	} else {
		conf["disable_local_ca_jwt"] = false
	}
	if _, err := v.Logical().WriteWithContext(ctx, "auth/kubernetes/config", conf); err != nil {
		return fmt.Errorf("provision: vault kubernetes auth config: %w", err)
	}
	for _, n := range Services {
		if err := kubernetesRole(ctx, v, n.Name, n.Name, namespace); err != nil {
			return err
		}
	}
	for _, id := range certAgentIdentities {
		if err := workloadRole(ctx, v, namespace, id); err != nil {
			return err
		}
		if err := putPolicy(ctx, v, id); err != nil {
			return fmt.Errorf("provision %s: %w", id, err)
		}
		if err := kubernetesRole(ctx, v, id, id, namespace); err != nil {
			return err
		}
	}
	cpNS, cpSA := k.ControlPlaneNamespace, k.ControlPlaneServiceAccount
	if cpNS == "" {
		cpNS = namespace
	}
	if cpSA == "" {
		cpSA = "bulkhead-control-plane"
	}
	if err := pkiRole(ctx, v, bhvault.ControlPlane, workload.SPIFFEID(cpNS, cpSA), k.ControlPlaneDNSNames...); err != nil {
		return err
	}
	return kubernetesRole(ctx, v, bhvault.ControlPlane, cpSA, cpNS)
}

// kubernetesRole binds Vault role name (policy bulkhead-NAME) to one
// service account.
func kubernetesRole(ctx context.Context, v *vault.Client, name, serviceAccount, namespace string) error {
	if _, err := v.Logical().WriteWithContext(ctx, "auth/kubernetes/role/"+name, map[string]any{
		"bound_service_account_names":      serviceAccount,
		"bound_service_account_namespaces": namespace,
		"token_policies":                   "bulkhead-" + name,
		"token_ttl":                        "1h",
		"token_max_ttl":                    "4h",
	}); err != nil {
		return fmt.Errorf("provision: vault kubernetes role %s: %w", name, err)
	}
	return nil
}
