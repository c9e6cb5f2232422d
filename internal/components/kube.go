package components

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
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
}

// Kube is a running kube-apiserver with its etcd, started the way
// controller-runtime's envtest does (a real API server, no controllers,
// no nodes).
type Kube struct {
	// Config reaches the API server as a cluster admin.
	Config *rest.Config

	env *envtest.Environment
}

// StartKube starts etcd and kube-apiserver built by `make tools`.
func StartKube(ctx context.Context, opts KubeOptions) (*Kube, error) {
	apiserver, err := toolBinary("kube-apiserver")
	if err != nil {
		return nil, err
	}
	etcd, err := toolBinary("etcd")
	if err != nil {
		return nil, err
	}
	// envtest logs through controller-runtime's global logger, which
	// otherwise prints a warning (with a stack) into test output.
	crlogOnce.Do(func() { crlog.SetLogger(logr.Discard()) })
	existing := false
	env := &envtest.Environment{
		// Explicit paths: KUBEBUILDER_ASSETS or USE_EXISTING_CLUSTER in the
		// environment must not redirect tests to other binaries or a real
		// cluster.
		ControlPlane: envtest.ControlPlane{
			APIServer: &envtest.APIServer{Path: apiserver},
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
	select {
	case r := <-done:
		if r.err != nil {
			_ = env.Stop()
			return nil, fmt.Errorf("kube-apiserver: %w", r.err)
		}
		return &Kube{Config: r.cfg, env: env}, nil
	case <-ctx.Done():
		go func() { <-done; _ = env.Stop() }()
		return nil, fmt.Errorf("kube-apiserver: %w", ctx.Err())
	}
}

// InstallCRDs installs CRDs and waits until the API server serves them.
func (k *Kube) InstallCRDs(crds ...*apiextensionsv1.CustomResourceDefinition) error {
	_, err := envtest.InstallCRDs(k.Config, envtest.CRDInstallOptions{CRDs: crds})
	if err != nil {
		return fmt.Errorf("install CRDs: %w", err)
	}
	return nil
}

// Close stops kube-apiserver and etcd and removes their data.
func (k *Kube) Close() error {
	if err := k.env.Stop(); err != nil {
		return fmt.Errorf("stop kube-apiserver: %w", err)
	}
	return nil
}
