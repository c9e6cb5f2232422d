package components

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresOptions configures StartPostgres.
type PostgresOptions struct {
	// Dir holds the cluster (data/, log, password). Empty: a new temporary
	// directory removed by Close. When Dir already holds a cluster made by a
	// previous run, it is started again with its data and password.
	Dir string
	// Port to listen on; 0 picks a free one.
	Port int
}

// Postgres is a running PostgreSQL server on 127.0.0.1.
type Postgres struct {
	Host     string
	Port     int
	User     string
	Password string
	// Database is the database created at init ("bulkhead").
	Database string
	Dir      string

	proc    *process
	tempDir bool
}

const pgSuperuser = "bulkhead"

var pgBinDirs = []string{"/usr/lib/postgresql/*/bin"}

// StartPostgres initialises a cluster with initdb (unless Dir already holds
// one) and starts the server. PostgreSQL refuses to run as root: when this
// process is root, the server runs as the "postgres" user (or "nobody").
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	initdb, err := systemBinary("initdb", pgBinDirs...)
	if err != nil {
		return nil, err
	}
	postgres, err := systemBinary("postgres", pgBinDirs...)
	if err != nil {
		return nil, err
	}
	cred, err := unprivilegedCredential()
	if err != nil {
		return nil, err
	}

	pg := &Postgres{Host: "127.0.0.1", User: pgSuperuser, Database: "bulkhead"}
	if pg.Dir, pg.tempDir, err = stateDir(opts.Dir, "postgres"); err != nil {
		return nil, err
	}
	fail := func(err error) (*Postgres, error) {
		if pg.tempDir {
			os.RemoveAll(pg.Dir)
		}
		return nil, err
	}
	if !pg.tempDir {
		if err := reachableBy(pg.Dir, cred); err != nil {
			return fail(err)
		}
	}
	if err := pg.init(ctx, initdb, cred); err != nil {
		return fail(err)
	}
	if err := startOnPort(opts.Port, func(port int) error { return pg.start(ctx, postgres, port, cred) }); err != nil {
		return fail(err)
	}
	return pg, nil
}

func (pg *Postgres) dataDir() string { return filepath.Join(pg.Dir, "data") }

// init runs initdb once; the superuser password lives next to the cluster.
func (pg *Postgres) init(ctx context.Context, initdb string, cred *syscall.Credential) error {
	pwFile := filepath.Join(pg.Dir, "password")
	if _, err := os.Stat(filepath.Join(pg.dataDir(), "PG_VERSION")); err == nil {
		b, err := os.ReadFile(pwFile)
		if err != nil {
			return fmt.Errorf("postgres: cluster in %s has no password file: %w", pg.Dir, err)
		}
		pg.Password = string(b)
		return nil
	}
	pg.Password = randomHex(16)
	if err := os.WriteFile(pwFile, []byte(pg.Password), 0o600); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := os.MkdirAll(pg.dataDir(), 0o700); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := chownForServer(pg.Dir, pg.dataDir(), cred); err != nil {
		return err
	}
	// initdb reads the password from a file the server user can read.
	tmpPw := filepath.Join(pg.Dir, ".initpw")
	if err := os.WriteFile(tmpPw, []byte(pg.Password+"\n"), 0o600); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer os.Remove(tmpPw)
	if err := chownForServer(pg.Dir, tmpPw, cred); err != nil {
		return err
	}

	cmd := exec.CommandContext(ctx, initdb,
		"-D", pg.dataDir(),
		"-U", pgSuperuser,
		"--pwfile", tmpPw,
		"--auth", "scram-sha-256",
		"--encoding", "UTF8",
		"--locale", "C",
		"--no-sync",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("postgres: initdb -D %s: %w\n%s", pg.dataDir(), err, out)
	}
	return nil
}

func (pg *Postgres) start(ctx context.Context, bin string, port int, cred *syscall.Credential) error {
	// The log is opened by this process and inherited, so the server user
	// needs no write access to pg.Dir.
	logPath := filepath.Join(pg.Dir, "postgres.log")
	args := []string{
		"-D", pg.dataDir(),
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "max_connections=200",
		// Throwaway clusters trade durability for speed.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
	}
	// The server is a direct child (not daemonised by pg_ctl) so that it dies
	// with this process.
	proc, err := startProcess("postgres", bin, args, nil, logPath, cred)
	if err != nil {
		return err
	}
	pg.Port = port
	pg.proc = proc
	err = proc.waitReady(ctx, 60*time.Second, func(ctx context.Context) error {
		// The maintenance database exists from initdb on; ours is created on
		// first start.
		conn, err := pgx.Connect(ctx, pg.DatabaseDSN("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return ensureDatabase(ctx, conn, pg.Database)
	})
	if err != nil {
		return stopAfterFailedStart(proc, syscall.SIGQUIT, err)
	}
	return nil
}

func ensureDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

// DSN is the connection string of the init database.
func (pg *Postgres) DSN() string { return pg.DatabaseDSN(pg.Database) }

// DatabaseDSN is the connection string of another database of the cluster.
func (pg *Postgres) DatabaseDSN(db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", pg.User, pg.Password, pg.Host, pg.Port, db)
}

// Addr is host:port.
func (pg *Postgres) Addr() string { return fmt.Sprintf("%s:%d", pg.Host, pg.Port) }

// CreateDatabase creates a database (for a test that wants its own) and
// returns its connection string.
func (pg *Postgres) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("postgres: create database %q: %w", name, err)
	}
	return pg.DatabaseDSN(name), nil
}

// Close stops the server (fast shutdown) and removes a temporary directory.
func (pg *Postgres) Close() error {
	// SIGINT is PostgreSQL's "fast" shutdown: clients are disconnected and
	// the cluster is left consistent.
	return stopServer(pg.proc, syscall.SIGINT, 30*time.Second, pg.Dir, pg.tempDir)
}

// unprivilegedCredential returns nil when this process is not root, and
// otherwise the credential of a user PostgreSQL accepts to run as.
func unprivilegedCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, errors.New("postgres: running as root and neither a \"postgres\" nor a \"nobody\" user exists to run the server as; run `make deps` (the postgresql package creates the user) or run as a normal user")
}

// chownForServer gives the server user the cluster directory and path, and
// lets it traverse dir.
func chownForServer(dir, path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// reachableBy checks that the server user can traverse every parent of dir:
// the data directory must be reachable by the user PostgreSQL runs as.
func reachableBy(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("postgres: the server runs as uid %d (PostgreSQL refuses root) and cannot reach %s: directory %s is not searchable by others (mode %s); choose a directory under a world-searchable path or run `chmod o+x %s`", cred.Uid, dir, p, st.Mode().Perm(), p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}
