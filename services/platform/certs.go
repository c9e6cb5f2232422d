package platform

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
)

// certs keeps the service's workload certificate fresh: issued by Vault's
// PKI (its AppRole may only ask for its own SPIFFE ID), written where
// grpc-go's file_watcher provider reads it (the bootstrap names the files),
// and renewed at two thirds of its lifetime. When Vault cannot be reached
// the current certificate keeps serving, the failure is logged, and
// renewal is retried until it works.
type certs struct {
	cfg   Config
	log   *slog.Logger
	files provision.CertFiles
	id    string

	mu       sync.Mutex
	notAfter time.Time
	renewAt  time.Time
	renewals int
	failures int
	done     chan struct{}
	wg       sync.WaitGroup
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
	c := &certs{cfg: cfg, log: log, files: provision.CertFilesIn(dir), id: ir.SPIFFEID(cfg.Namespace, cfg.Name), done: make(chan struct{})}
	if err := c.issue(ctx); err != nil {
		return nil, err
	}
	c.wg.Add(1)
	go c.loop()
	return c, nil
}

// issue gets a new certificate and writes it.
func (c *certs) issue(ctx context.Context) error {
	client, err := VaultLogin(ctx, c.cfg.Vault)
	if err != nil {
		return err
	}
	defer revoke(ctx, client, c.log)
	iss, err := provision.IssueCert(ctx, client, c.cfg.Name, c.id, c.cfg.CertTTL)
	if err != nil {
		return err
	}
	if err := iss.Write(c.files); err != nil {
		return err
	}
	c.mu.Lock()
	c.notAfter, c.renewAt = iss.NotAfter, iss.RenewAt()
	c.renewals++
	c.mu.Unlock()
	c.log.Info("workload certificate issued", "spiffe_id", c.id, "serial", iss.Serial, "not_after", iss.NotAfter)
	return nil
}

func (c *certs) loop() {
	defer c.wg.Done()
	backoff := time.Second
	for {
		c.mu.Lock()
		wait := time.Until(c.renewAt)
		c.mu.Unlock()
		select {
		case <-c.done:
			return
		case <-time.After(max(wait, 0)):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.issue(ctx)
		cancel()
		if err == nil {
			backoff = time.Second
			continue
		}
		c.mu.Lock()
		c.failures++
		left := time.Until(c.notAfter)
		// Try again soon, never later than the certificate's expiry.
		c.renewAt = time.Now().Add(min(backoff, max(left/2, time.Second)))
		c.mu.Unlock()
		c.log.Error("renewing the workload certificate failed; the current one keeps serving", "error", err, "valid_for", left.Round(time.Second))
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (c *certs) close() error {
	close(c.done)
	c.wg.Wait()
	if c.cfg.CertDir == "" {
		return os.RemoveAll(c.files.Dir)
	}
	return nil
}

// Renewals counts the certificates issued so far (tests).
func (c *certs) Renewals() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.renewals
}

// Failures counts the renewals that failed.
func (c *certs) Failures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failures
}
