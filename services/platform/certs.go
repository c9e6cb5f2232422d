package platform

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// certs keeps the service's workload certificate fresh: issued by Vault's
// PKI (its AppRole may only ask for its own SPIFFE ID), written where
// grpc-go's file_watcher provider reads it (the bootstrap names the files),
// and renewed at two thirds of its lifetime. When Vault cannot be reached
// the current certificate keeps serving, the failure is logged, and
// renewal is retried until it works.
type certs struct {
	*renewer
	cfg   Config
	log   *slog.Logger
	files pki.CertFiles
	id    string
}

func startCerts(ctx context.Context, cfg Config, log *slog.Logger) (*certs, error) {
	dir := cfg.CertDir
	if dir == "" {
		d, err := os.MkdirTemp("", "bulkhead-"+cfg.Instance+"-certs-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	c := &certs{cfg: cfg, log: log, files: pki.CertFilesIn(dir), id: workload.SPIFFEID(cfg.Namespace, cfg.Name)}
	r, err := startRenewer(ctx, "the workload certificate", log, c.issue)
	if err != nil {
		return nil, err
	}
	c.renewer = r
	return c, nil
}

// issue gets a new certificate and writes it.
func (c *certs) issue(ctx context.Context) (time.Time, time.Time, error) {
	client, err := pki.Login(ctx, c.cfg.Vault)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	defer pki.Revoke(ctx, client, c.log)
	iss, err := pki.IssueCert(ctx, client, c.cfg.Name, c.id, c.cfg.CertTTL)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if err := iss.Write(c.files); err != nil {
		return time.Time{}, time.Time{}, err
	}
	c.log.Info("workload certificate issued", "spiffe_id", c.id, "serial", iss.Serial, "not_after", iss.NotAfter)
	return iss.NotAfter, iss.RenewAt(), nil
}

func (c *certs) close() error {
	c.renewer.close()
	if c.cfg.CertDir == "" {
		return os.RemoveAll(c.files.Dir)
	}
	return nil
}
