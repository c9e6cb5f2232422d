package platform

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// dbCreds keeps the service's database credentials fresh: a short-lived
// PostgreSQL user from Vault's database secrets engine, replaced by a new
// one at two thirds of its lease. New connections take the current user;
// the pool retires connections after a quarter of the lease, so none
// outlives the user it logged in with. When Vault cannot be reached, the
// current user keeps serving and the renewal is retried.
type dbCreds struct {
	*renewer
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	user     string
	password string
	lease    time.Duration
}

func startDBCreds(ctx context.Context, cfg Config, log *slog.Logger) (*dbCreds, error) {
	d := &dbCreds{cfg: cfg, log: log}
	r, err := startRenewer(ctx, "the database credentials", log, d.fetch)
	if err != nil {
		return nil, err
	}
	d.renewer = r
	return d, nil
}

func (d *dbCreds) fetch(ctx context.Context) (time.Time, time.Time, error) {
	client, err := pki.Login(ctx, d.cfg.Vault)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	// The login token is not revoked here: revoking it would revoke the
	// lease of the database user it obtains (and drop the user). It expires
	// by itself (the AppRole's token TTL, not shorter than the lease).
	s, err := client.Logical().ReadWithContext(ctx, bhvault.DatabaseMount+"/creds/"+d.cfg.Name)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("vault: database credentials of %s: %w", d.cfg.Name, err)
	}
	if s == nil || s.Data["username"] == nil {
		return time.Time{}, time.Time{}, fmt.Errorf("vault: no database credentials for %s", d.cfg.Name)
	}
	lease := time.Duration(s.LeaseDuration) * time.Second
	now := time.Now()
	d.mu.Lock()
	d.user, d.password = fmt.Sprint(s.Data["username"]), fmt.Sprint(s.Data["password"])
	d.lease = lease
	d.mu.Unlock()
	d.log.Info("database credentials issued", "user", fmt.Sprint(s.Data["username"]), "lease", lease)
	return now.Add(lease), now.Add(lease * 2 / 3), nil
}

func (d *dbCreds) current() (string, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.user, d.password
}

// poolConfig connects with the current user and works as the service's
// owner role.
func (d *dbCreds) poolConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database_url: %w", err)
	}
	cfg.BeforeConnect = func(_ context.Context, cc *pgx.ConnConfig) error {
		cc.User, cc.Password = d.current()
		return nil
	}
	owner := pgx.Identifier{d.cfg.Name}.Sanitize()
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SET ROLE "+owner)
		return err
	}
	d.mu.Lock()
	lease := d.lease
	d.mu.Unlock()
	cfg.MaxConnLifetime = max(lease/4, 2*time.Second)
	cfg.MaxConnLifetimeJitter = cfg.MaxConnLifetime / 10
	cfg.HealthCheckPeriod = min(time.Minute, max(lease/8, time.Second))
	return cfg, nil
}
