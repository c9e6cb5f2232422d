package components

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
)

var crlogOnce sync.Once

// KubeOptions configures StartKube.
type KubeOptions struct {
	// CRDDirs are directories of CRD YAML installed before StartKube returns.
	CRDDirs []string
	// CRDs are CRD objects installed before StartKube returns.
	CRDs []*apiextensionsv1.CustomResourceDefinition
	// Controllers, when not empty, also starts kube-controller-manager
	// running these controllers (its --controllers names, for example
	// "deployment", "replicaset", "endpointslice"), so that Deployments,
	// ReplicaSets and EndpointSlices behave as in a cluster. There are no
	// nodes and no kubelet: a test creates Node objects, binds Pods and
	// reports their status itself.
	Controllers []string
}

// Kube is a running kube-apiserver with its etcd, started the way
// controller-runtime's envtest does, and optionally kube-controller-manager.
type Kube struct {
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for the same cluster
	// admin, for kubectl and other processes.
	Kubeconfig string

	env     *envtest.Environment
	dir     string
	kcm     *process
	kubectl string
}

// StartKube starts etcd and kube-apiserver built by `make tools`, and
// kube-controller-manager when opts.Controllers names controllers.
func StartKube(ctx context.Context, opts KubeOptions) (*Kube, error) {
	apiserver, err := toolBinary("kube-apiserver")
	if err != nil {
		return nil, err
	}
	etcd, err := toolBinary("etcd")
	if err != nil {
		return nil, err
	}
	kcm := ""
	if len(opts.Controllers) > 0 {
		if kcm, err = toolBinary("kube-controller-manager"); err != nil {
			return nil, err
		}
	}
	// envtest logs through controller-runtime's global logger, which
	// otherwise prints a warning (with a stack) into test output.
	crlogOnce.Do(func() { crlog.SetLogger(logr.Discard()) })
	existing := false
	api := &envtest.APIServer{Path: apiserver}
	// Room for a cluster's worth of Services (envtest's default, a /24,
	// holds 256).
	api.Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	env := &envtest.Environment{
		// Explicit paths: KUBEBUILDER_ASSETS or USE_EXISTING_CLUSTER in the
		// environment must not redirect tests to other binaries or a real
		// cluster.
		ControlPlane: envtest.ControlPlane{
			APIServer: api,
			Etcd:      &envtest.Etcd{Path: etcd},
		},
		UseExistingCluster:       &existing,
		CRDDirectoryPaths:        opts.CRDDirs,
		CRDs:                     opts.CRDs,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	type result struct {
		cfg *rest.Config
		err error
	}
	done := make(chan result, 1)
	go func() {
		cfg, err := env.Start()
		done <- result{cfg, err}
	}()
	var k *Kube
	select {
	case r := <-done:
		if r.err != nil {
			_ = env.Stop()
			return nil, fmt.Errorf("kube-apiserver: %w", r.err)
		}
		k = &Kube{Config: r.cfg, env: env}
	case <-ctx.Done():
		go func() { <-done; _ = env.Stop() }()
		return nil, fmt.Errorf("kube-apiserver: %w", ctx.Err())
	}
	if err := k.prepare(); err != nil {
		return nil, errors.Join(err, k.Close())
	}
	if kcm != "" {
		if err := k.startControllerManager(ctx, kcm, opts.Controllers); err != nil {
			return nil, errors.Join(err, k.Close())
		}
	}
	return k, nil
}

// prepare writes the admin kubeconfig into the Kube's own directory.
func (k *Kube) prepare() error {
	dir, err := os.MkdirTemp("", "bulkhead-kube-")
	if err != nil {
		return fmt.Errorf("kube: %w", err)
	}
	k.dir = dir
	admin, err := k.env.AddUser(envtest.User{Name: "bulkhead-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("kube: admin user: %w", err)
	}
	if k.Kubeconfig, err = writeKubeconfig(dir, "admin.kubeconfig", admin); err != nil {
		return err
	}
	return nil
}

func writeKubeconfig(dir, name string, u *envtest.AuthenticatedUser) (string, error) {
	b, err := u.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("kube: kubeconfig %s: %w", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", fmt.Errorf("kube: %w", err)
	}
	return path, nil
}

// startControllerManager runs kube-controller-manager as a cluster runs it:
// its own identity (system:kube-controller-manager, bound by the API
// server's bootstrap RBAC policy) and, for each controller, a service
// account token, so every controller has only its own role's permissions.
func (k *Kube) startControllerManager(ctx context.Context, bin string, controllers []string) error {
	user, err := k.env.AddUser(envtest.User{Name: "system:kube-controller-manager"}, nil)
	if err != nil {
		return fmt.Errorf("kube-controller-manager: user: %w", err)
	}
	kubeconfig, err := writeKubeconfig(k.dir, "kube-controller-manager.kubeconfig", user)
	if err != nil {
		return err
	}
	certDir := filepath.Join(k.dir, "kube-controller-manager")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return fmt.Errorf("kube-controller-manager: %w", err)
	}
	return startOnPort(0, func(port int) error {
		args := []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--controllers=" + strings.Join(controllers, ","),
			"--use-service-account-credentials=true",
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			"--cert-dir=" + certDir,
			// The default (20/s, burst 30) suits a cluster's steady state;
			// tests create thousands of Pods at once.
			"--kube-api-qps=200",
			"--kube-api-burst=400",
			"--v=1",
		}
		p, err := startProcess("kube-controller-manager", bin, args, nil, filepath.Join(k.dir, "kube-controller-manager.log"), nil)
		if err != nil {
			return err
		}
		// Probed like a kubelet probes it: /healthz over the serving
		// certificate it made itself (nothing to verify it against).
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // readiness probe of a local child process
		url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
		err = p.waitReady(ctx, 60*time.Second, func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				return fmt.Errorf("healthz: %s: %s", resp.Status, body)
			}
			return nil
		})
		if err != nil {
			return stopAfterFailedStart(p, syscall.SIGTERM, err)
		}
		k.kcm = p
		return nil
	})
}

// InstallCRDs installs CRDs and waits until the API server serves them.
func (k *Kube) InstallCRDs(crds ...*apiextensionsv1.CustomResourceDefinition) error {
	_, err := envtest.InstallCRDs(k.Config, envtest.CRDInstallOptions{CRDs: crds})
	if err != nil {
		return fmt.Errorf("install CRDs: %w", err)
	}
	return nil
}

// Kubectl runs the kubectl built by `make tools` as the cluster admin, with
// stdin (may be empty) as its input, and returns what it printed. A failed
// command's error carries its stderr, as a user would see it.
func (k *Kube) Kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	if k.kubectl == "" {
		bin, err := toolBinary("kubectl")
		if err != nil {
			return "", err
		}
		k.kubectl = bin
	}
	cmd := exec.CommandContext(ctx, k.kubectl, append([]string{"--kubeconfig=" + k.Kubeconfig}, args...)...)
	// No user's kubeconfig, cache or plugins may leak into a test.
	cmd.Env = []string{"HOME=" + k.dir, "PATH=/usr/bin:/bin", "KUBECACHEDIR=" + filepath.Join(k.dir, "kubectl-cache")}
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// ServiceAccountConfig reaches the API server as a ServiceAccount, with a
// token the API server issued for it (TokenRequest, one hour), as a Pod
// running under it would: only what RBAC grants that account.
func (k *Kube) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	cs, err := kubernetes.NewForConfig(k.Config)
	if err != nil {
		return nil, fmt.Errorf("kube: %w", err)
	}
	expiry := int64(3600)
	tok, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube: token for service account %s/%s: %w", namespace, name, err)
	}
	cfg := rest.AnonymousClientConfig(k.Config)
	cfg.BearerToken = tok.Status.Token
	return cfg, nil
}

// Close stops kube-controller-manager, kube-apiserver and etcd and removes
// their data.
func (k *Kube) Close() error {
	var err error
	if k.kcm != nil {
		err = k.kcm.stop(syscall.SIGTERM, 10*time.Second)
	}
	if stopErr := k.env.Stop(); stopErr != nil {
		err = errors.Join(err, fmt.Errorf("stop kube-apiserver: %w", stopErr))
	}
	if k.dir != "" {
		err = errors.Join(err, os.RemoveAll(k.dir))
	}
	return err
}
