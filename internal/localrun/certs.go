package localrun

import (
	"context"
	"fmt"
	"log/slog"

	vault "github.com/hashicorp/vault/api"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// keepCertificate issues a workload certificate for identity into files
// (with the runner's Vault token, through the control plane's issuing role)
// and renews it until stop is called.
func keepCertificate(ctx context.Context, log *slog.Logger, v *vault.Client, identity string, files pki.CertFiles) (stop func(), err error) {
	return pki.Keep(ctx, log, identity, func(ctx context.Context) (*pki.Issued, error) {
		iss, err := pki.IssueCert(ctx, v, bhvault.EnvoyIssuerRole, workload.SPIFFEID("default", identity), bhvault.WorkloadTTL, "127.0.0.1")
		if err != nil {
			return nil, fmt.Errorf("%s certificate: %w", identity, err)
		}
		return iss, nil
	}, files)
}
