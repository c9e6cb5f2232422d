package platform_test

import (
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
)

// In a cluster a service logs in to Vault with its Kubernetes service
// account (Vault asks the API server to review the token): the users
// account gets users' secret and nothing else, another account is refused.
// Real kube-apiserver + etcd, real Vault.
func TestVaultKubernetesLogin(t *testing.T) {
	var k *components.Kube
	var pg *components.Postgres
	var rd *components.Redis
	var v *components.Vault
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); k = testenv.NewKube(t, components.KubeOptions{}) }()
	go func() { defer wg.Done(); pg = testenv.NewPostgres(t) }()
	go func() { defer wg.Done(); rd = testenv.NewRedis(t) }()
	go func() { defer wg.Done(); v = testenv.NewVault(t) }()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cs, err := kubernetes.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	token := func(sa string) string {
		if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	reviewer := token("vault-auth")
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "vault-auth-delegator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vault-auth", Namespace: "default"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ca := k.Config.CAData
	if len(ca) == 0 {
		ca, _ = os.ReadFile(k.Config.CAFile)
	}
	if block, _ := pem.Decode(ca); block == nil {
		t.Fatalf("API server CA is not PEM")
	}
	if _, err := provision.Provision(ctx, provision.Options{
		PostgresAdminDSN: pg.DSN(), PostgresHost: pg.Host, PostgresPort: pg.Port,
		RedisAddr: rd.Addr, RedisPassword: rd.Password, VaultAddr: v.Addr, VaultToken: v.RootToken,
		Dir:        t.TempDir(),
		Kubernetes: &provision.KubernetesAuth{Host: k.Config.Host, CAPEM: string(ca), ReviewerJWT: reviewer},
	}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	write := func(name, tok string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	usersTok, chatTok := write("users", token("users")), write("chat", token("chat"))

	c, err := pki.Login(ctx, pki.VaultConfig{Address: v.Addr, KubernetesRole: "users", KubernetesTokenFile: usersTok})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.KVv2("secret").Get(ctx, "bulkhead/users"); err != nil {
		t.Fatalf("users reading its secret: %v", err)
	}
	if _, err := c.KVv2("secret").Get(ctx, "bulkhead/auth"); err == nil {
		t.Fatal("users read auth's secret")
	}
	// chat's account presenting itself for the users role: refused.
	if _, err := pki.Login(ctx, pki.VaultConfig{Address: v.Addr, KubernetesRole: "users", KubernetesTokenFile: chatTok}); err == nil || !strings.Contains(err.Error(), "vault kubernetes login") {
		t.Fatalf("another service account for the users role: %v", err)
	}
}
