package platform

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Postgres opens the service's database (the database_url of its Vault
// secret, with short-lived users from Vault's database secrets engine,
// rotated before they expire), applies the migrations in dir (files
// NNNN_name.sql, in name order, each once, in a transaction), and closes
// the pool at stop. The pool's connection counts are reported as
// db.client.connections.
func (rt *Runtime) Postgres(ctx context.Context, migrations fs.FS) (*pgxpool.Pool, error) {
	url, err := rt.Secrets.Get("database_url")
	if err != nil {
		return nil, err
	}
	creds, err := startDBCreds(ctx, rt.Config, rt.Log)
	if err != nil {
		return nil, err
	}
	rt.dbCreds = creds
	rt.OnStop(func() error { creds.close(); return nil })
	cfg, err := creds.poolConfig(url)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := Migrate(ctx, pool, migrations); err != nil {
		pool.Close()
		return nil, err
	}
	rt.OnStop(func() error { pool.Close(); return nil })
	_, err = rt.Telemetry.Meter.Int64ObservableGauge("db.client.connections",
		metric.WithDescription("PostgreSQL pool connections by state"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			st := pool.Stat()
			o.Observe(int64(st.AcquiredConns()), metric.WithAttributeSet(stateAttr("used")))
			o.Observe(int64(st.IdleConns()), metric.WithAttributeSet(stateAttr("idle")))
			return nil
		}))
	if err != nil {
		return nil, err
	}
	return pool, nil
}

// Migrate applies the *.sql files of dir (at any depth, ordered by file
// name) that the database has not seen, under an advisory lock so that
// replicas starting together apply each once.
func Migrate(ctx context.Context, pool *pgxpool.Pool, dir fs.FS) error {
	var names []string
	err := fs.WalkDir(dir, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".sql") {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("migrate: no *.sql file")
	}
	sort.Slice(names, func(i, j int) bool { return path.Base(names[i]) < path.Base(names[j]) })
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(7340125)`); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7340125)`)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, name := range names {
		version := strings.TrimSuffix(path.Base(name), ".sql")
		body, err := fs.ReadFile(dir, name)
		if err != nil {
			return err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING`, version)
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			_, err = tx.Exec(ctx, string(body))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
	}
	return nil
}

// Redis connects to the service's Redis (the redis_url of its Vault
// secret: its own ACL user, limited to its key prefix) and closes it at
// stop.
func (rt *Runtime) Redis(ctx context.Context) (*redis.Client, error) {
	url, err := rt.Secrets.Get("redis_url")
	if err != nil {
		return nil, err
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis_url: %w", err)
	}
	opts.PoolSize = 64
	c := redis.NewClient(opts)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis at %s: %w", opts.Addr, err)
	}
	rt.OnStop(c.Close)
	return c, nil
}

func stateAttr(v string) attribute.Set { return attribute.NewSet(attribute.String("state", v)) }
