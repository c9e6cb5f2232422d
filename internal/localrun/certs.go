package localrun

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// keepCertificate issues a workload certificate for identity into files
// and renews it at two thirds of its life until stop is called; a failed
// renewal is logged and retried in 10 s (the current one stays).
func keepCertificate(ctx context.Context, log *slog.Logger, v *vault.Client, identity string, files pki.CertFiles) (stop func(), err error) {
	issue := func(ctx context.Context) (time.Time, error) {
		iss, err := pki.IssueCert(ctx, v, bhvault.EnvoyIssuerRole, workload.SPIFFEID("default", identity), bhvault.WorkloadTTL, "127.0.0.1")
		if err != nil {
			return time.Time{}, fmt.Errorf("%s certificate: %w", identity, err)
		}
		if err := iss.Write(files); err != nil {
			return time.Time{}, err
		}
		return iss.RenewAt(), nil
	}
	renewAt, err := issue(ctx)
	if err != nil {
		return nil, err
	}
	renewCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-time.After(time.Until(renewAt)):
			}
			next, err := issue(renewCtx)
			if err != nil {
				log.Error("renewing a workload certificate", "identity", identity, "error", err)
				next = time.Now().Add(10 * time.Second)
			}
			renewAt = next
		}
	}()
	return cancel, nil
}
