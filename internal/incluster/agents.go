package incluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// KeepUnsealed runs beside Vault (the same pod): whenever Vault answers
// sealed (it restarted), it unseals it with the key the bootstrap kept.
// Before the bootstrap ran there is nothing to do; it waits.
func KeepUnsealed(ctx context.Context, log *slog.Logger, cs kubernetes.Interface, namespace, vaultAddr, caFile string, every time.Duration) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("vault CA: %w", err)
	}
	v, err := vaultClient(vaultAddr, ca)
	if err != nil {
		return err
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := v.Sys().SealStatusWithContext(cctx)
		switch {
		case err != nil:
			log.Debug("vault seal status", "error", err)
		case st.Initialized && st.Sealed:
			if _, err := unseal(cctx, log, cs, namespace, v); err != nil {
				log.Error("unsealing Vault", "error", err)
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// WaitForRole returns once the pod's service account can log in to Vault
// as role (the bootstrap has run): an init container, so that a service
// starts only when its credentials exist rather than crash until then.
func WaitForRole(ctx context.Context, log *slog.Logger, vc pki.VaultConfig) error {
	return retry(ctx, log, "vault role "+vc.KubernetesRole, func(ctx context.Context) error {
		c, err := pki.Login(ctx, vc)
		if err != nil {
			return err
		}
		pki.Revoke(ctx, c, log)
		return nil
	})
}

// CertAgentOptions configures CertAgent.
type CertAgentOptions struct {
	Vault pki.VaultConfig
	// Identity is the service account the certificate is for (its SPIFFE
	// ID names it and Namespace); Role the PKI role that issues it
	// (default Identity).
	Identity, Namespace, Role string
	// SANs are other names the certificate carries (IP addresses, or DNS
	// names its PKI role allows).
	SANs []string
	// Dir receives cert.pem, key.pem and ca.pem.
	Dir string
	// ReadyAddress serves GET /ready: 200 once the first certificate is
	// written (a startup probe holds the pod's other containers until then).
	ReadyAddress string
	Log          *slog.Logger
}

// CertAgent keeps a workload certificate in files for a program beside it
// that cannot read Vault (envoyproxy/ratelimit, Envoy, the control plane's
// serving certificate): it logs in with the pod's service account for
// each issue and renews at two thirds of the certificate's life, until ctx
// ends.
func CertAgent(ctx context.Context, o CertAgentOptions) error {
	if o.Identity == "" || o.Namespace == "" || o.Dir == "" {
		return errors.New("cert agent: --identity, --namespace and --dir are required")
	}
	if o.Role == "" {
		o.Role = o.Identity
	}
	var ready atomic.Bool
	if o.ReadyAddress != "" {
		lis, err := net.Listen("tcp", o.ReadyAddress)
		if err != nil {
			return fmt.Errorf("--ready-address: %w", err)
		}
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/ready" || !ready.Load() {
				http.Error(w, "no certificate yet", http.StatusServiceUnavailable)
				return
			}
			_, _ = w.Write([]byte("ok\n"))
		})}
		go func() { _ = srv.Serve(lis) }()
		defer srv.Close()
	}
	id := workload.SPIFFEID(o.Namespace, o.Identity)
	issue := func(ctx context.Context) (*pki.Issued, error) {
		c, err := pki.Login(ctx, o.Vault)
		if err != nil {
			return nil, err
		}
		defer pki.Revoke(ctx, c, o.Log)
		return pki.IssueCert(ctx, c, o.Role, id, bhvault.WorkloadTTL, o.SANs...)
	}
	files := pki.CertFilesIn(o.Dir)
	var stop func()
	if err := retry(ctx, o.Log, "the first certificate of "+id, func(ctx context.Context) error {
		var err error
		stop, err = pki.Keep(ctx, o.Log, id, issue, files)
		return err
	}); err != nil {
		return err
	}
	defer stop()
	ready.Store(true)
	o.Log.Info("keeping a workload certificate", "spiffe_id", id, "dir", o.Dir, "sans", o.SANs)
	<-ctx.Done()
	return nil
}
