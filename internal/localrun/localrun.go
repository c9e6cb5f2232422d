// Package localrun is `bulkhead up`: it runs the platform on this machine as
// processes, with all state under one directory (.bulkhead/ by default).
//
// It brings up the dependencies (PostgreSQL, Redis, Vault, a Kafka broker),
// provisions them for the services (internal/provision: databases, Redis
// users, Vault policies and AppRoles), starts the control plane on
// policies/mesh plus the EndpointSlice files it writes into
// STATE/endpoints, then every service as its own process on the proxyless
// mesh. Each component is started after the ones it needs, and stopped
// before them.
package localrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
)

// Options configures Run.
type Options struct {
	// StateDir holds every file the platform writes (default .bulkhead).
	StateDir string
	// Out receives the progress report.
	Out io.Writer
	// MeshDir is the control plane's input (default policies/mesh); empty
	// or missing: no control plane.
	MeshDir string
	// ModelsDir holds the platform's Model objects (default
	// policies/models), watched by the models service beside
	// STATE/models; missing: only STATE/models.
	ModelsDir string
	// Upstreams are the models served by OpenAI-compatible servers
	// (--upstream NAME=URL), written as Model objects to STATE/models.
	Upstreams []Upstream
	// XDSAddress and AdminAddress of the control plane.
	XDSAddress, AdminAddress string
	// BinDir holds the service binaries bulkhead-NAME (default: the
	// directory of the running executable, bin/ under `make run`).
	BinDir string
	// APIAddress is the public API's address (default 127.0.0.1:8080).
	APIAddress string
	// TokenInterval is the builtin engine's time per generated piece.
	TokenInterval time.Duration
	// EnvoyBinary runs the edge router and gateways; "" looks for envoy on
	// PATH, and without one the edge is not started.
	EnvoyBinary string
	// WebhooksAllowNetworks are the CIDRs webhook deliveries may reach
	// although loopback, link-local or private (none by default).
	WebhooksAllowNetworks []string
	// Pprof makes every service serve its Go profiles on its metrics
	// address (--pprof).
	Pprof bool
}

// component is one running part of the platform.
type component struct {
	name  string
	where string
	close func() error
}

// Run starts everything, reports where it runs, and blocks until ctx is
// cancelled (Ctrl-C); then it stops everything in reverse order.
func Run(ctx context.Context, opts Options) (err error) {
	if opts.StateDir == "" {
		opts.StateDir = ".bulkhead"
	}
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.APIAddress == "" {
		opts.APIAddress = "127.0.0.1:8080"
	}
	if opts.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		opts.BinDir = filepath.Dir(exe)
	}
	out := opts.Out
	state, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return err
	}
	// 0755: PostgreSQL may run as another user and must reach its directory.
	if err := os.MkdirAll(state, 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	unlock, err := lockState(state)
	if err != nil {
		return err
	}
	defer unlock()

	var running []component
	defer func() {
		if len(running) == 0 {
			return
		}
		fmt.Fprintln(out, "stopping ...")
		for i := len(running) - 1; i >= 0; i-- {
			c := running[i]
			if cerr := c.close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("stop %s: %w", c.name, cerr))
				fmt.Fprintf(out, "  %-20s stop failed: %v\n", c.name, cerr)
				continue
			}
			fmt.Fprintf(out, "  %-20s stopped\n", c.name)
		}
	}()

	var stopping atomic.Bool
	defer stopping.Store(true)
	start := func(name string, fn func() (component, error)) error {
		fmt.Fprintf(out, "  %-20s starting ...", name)
		t0 := time.Now()
		c, err := fn()
		if err != nil {
			fmt.Fprintln(out, " failed")
			return fmt.Errorf("start %s: %w", name, err)
		}
		c.name = name
		running = append(running, c)
		fmt.Fprintf(out, " up in %s at %s\n", time.Since(t0).Round(10*time.Millisecond), c.where)
		return nil
	}

	fmt.Fprintf(out, "bulkhead up: state in %s\n", state)
	env := envFile{}
	var pg *components.Postgres
	var rd *components.Redis
	var vlt *components.Vault
	var kafka *components.Kafka

	if err := start("postgres", func() (component, error) {
		var err error
		pg, err = components.StartPostgres(ctx, components.PostgresOptions{Dir: filepath.Join(state, "postgres")})
		if err != nil {
			return component{}, err
		}
		env.add("BULKHEAD_POSTGRES_DSN", pg.DSN())
		return component{where: pg.Addr() + " (database " + pg.Database + ")", close: pg.Close}, nil
	}); err != nil {
		return err
	}
	if err := start("redis", func() (component, error) {
		r, err := components.StartRedis(ctx, components.RedisOptions{Dir: filepath.Join(state, "redis")})
		if err != nil {
			return component{}, err
		}
		rd = r
		env.add("BULKHEAD_REDIS_ADDR", r.Addr)
		env.add("BULKHEAD_REDIS_PASSWORD", r.Password)
		return component{where: r.Addr, close: r.Close}, nil
	}); err != nil {
		return err
	}
	if err := start("vault", func() (component, error) {
		v, err := components.StartVault(ctx, components.VaultOptions{Dir: filepath.Join(state, "vault")})
		if err != nil {
			return component{}, err
		}
		vlt = v
		env.add("VAULT_ADDR", v.Addr)
		env.add("VAULT_TOKEN", v.RootToken)
		return component{where: v.Addr + " (dev mode, in memory)", close: v.Close}, nil
	}); err != nil {
		return err
	}
	if err := start("kafka", func() (component, error) {
		k, err := components.StartKafka(components.KafkaOptions{DataDir: filepath.Join(state, "kafka")})
		if err != nil {
			return component{}, err
		}
		kafka = k
		env.add("BULKHEAD_KAFKA_SEEDS", strings.Join(k.Seeds, ","))
		env.add("BULKHEAD_KAFKA_USER", k.AdminUser)
		env.add("BULKHEAD_KAFKA_PASSWORD", k.AdminPassword)
		return component{where: strings.Join(k.Seeds, ",") + " (in process, SASL SCRAM-SHA-256, ACLs)", close: k.Close}, nil
	}); err != nil {
		return err
	}

	var cp *controlplane.ControlPlane
	var keyPath, ingress string
	endpointsDir := filepath.Join(state, "endpoints")
	if opts.MeshDir != "" {
		if st, err := os.Stat(opts.MeshDir); err != nil || !st.IsDir() {
			fmt.Fprintf(out, "  %-20s skipped: no directory %s (run from the repository, or pass --mesh-dir)\n", "control", opts.MeshDir)
		} else {
			// Endpoints of an earlier run are stale: their processes are gone.
			if err := os.RemoveAll(endpointsDir); err != nil {
				return err
			}
			if err := os.MkdirAll(endpointsDir, 0o755); err != nil {
				return err
			}
			fmt.Fprintln(out, "provisioning databases, Redis users, Vault PKI, database engine, policies and AppRoles ...")
			prov, err := provision.Provision(ctx, provision.Options{
				PostgresAdminDSN: pg.DSN(), PostgresHost: pg.Host, PostgresPort: pg.Port,
				RedisAddr: rd.Addr, RedisPassword: rd.Password,
				VaultAddr: vlt.Addr, VaultToken: vlt.RootToken,
				Dir:      filepath.Join(state, "secrets"),
				KeysFile: filepath.Join(state, "secrets", "keys.json"),
				Kafka:    &provision.KafkaAdmin{Seeds: kafka.Seeds, User: kafka.AdminUser, Password: kafka.AdminPassword},
			})
			if err != nil {
				return err
			}
			if err := start("control", func() (component, error) {
				c, where, closeFn, err := startControlPlane(ctx, opts, state, endpointsDir, vlt)
				if err != nil {
					return component{}, err
				}
				cp = c
				env.add("BULKHEAD_XDS_ADDR", cp.XDSAddr())
				env.add("BULKHEAD_ADMIN_ADDR", cp.AdminAddr())
				return component{where: where, close: closeFn}, nil
			}); err != nil {
				return err
			}
			logDir := filepath.Join(state, "logs")
			if err := os.MkdirAll(logDir, 0o700); err != nil {
				return err
			}
			if err := writeUpstreams(ModelsStateDir(state), opts.Upstreams); err != nil {
				return fmt.Errorf("models: %w", err)
			}
			for _, p := range processes(opts, state) {
				if err := start(p.instance, func() (component, error) {
					return startProcess(ctx, p, opts.BinDir, endpointsDir, logDir, cp.XDSAddr(), vlt.Addr, prov.Credentials[p.name], prov.Operator, stopping.Load, out)
				}); err != nil {
					return err
				}
			}
			if keyPath, err = devKey(ctx, state, cp.XDSAddr(), prov.Operator); err != nil {
				return err
			}
			if ingress, err = startEdge(ctx, opts, start, &env, state, endpointsDir, logDir, cp, vlt, rd, prov); err != nil {
				return err
			}
		}
	}

	envPath := filepath.Join(state, "env")
	if err := env.write(envPath); err != nil {
		return err
	}
	defer os.Remove(envPath)

	fmt.Fprintf(out, "\nready. Connection settings and credentials: %s (mode 0600)\n", envPath)
	fmt.Fprintf(out, "  source %s && psql \"$BULKHEAD_POSTGRES_DSN\"\n", envPath)
	if opts.MeshDir != "" {
		fmt.Fprintln(out, "  bulkhead status --admin-address \"$BULKHEAD_ADMIN_ADDR\"   (after sourcing it)")
	}
	if keyPath != "" {
		api := opts.APIAddress
		if ingress != "" {
			api = ingress
			fmt.Fprintf(out, "\nThe API is at http://%s through the edge router and gateways (and directly at http://%s). Development key (admin): %s\n", ingress, opts.APIAddress, relLog(keyPath))
		} else {
			fmt.Fprintf(out, "\nThe API is at http://%s (OpenAI/DeepSeek-compatible). Development key (admin): %s\n", opts.APIAddress, relLog(keyPath))
		}
		fmt.Fprintf(out, "  curl http://%s/v1/chat/completions -H \"Authorization: Bearer $(cat %s)\" -H 'Content-Type: application/json' \\\n", api, relLog(keyPath))
		fmt.Fprintln(out, `    -d '{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "What is light?"}], "stream": true}'`)
		fmt.Fprintf(out, "  bin/bulkhead chat \"What is light?\"\n")
	}
	fmt.Fprintln(out, "press Ctrl-C to stop")
	<-ctx.Done()
	return nil
}

// envFile is the shell-sourceable list of connection settings.
type envFile []string

func (e *envFile) add(k, v string) {
	*e = append(*e, fmt.Sprintf("export %s=%s", k, shellQuote(v)))
}

func (e envFile) write(path string) error {
	body := "# Written by `bulkhead up` while it runs; removed when it stops.\n" + strings.Join(e, "\n") + "\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// lockState makes sure one `bulkhead up` owns the state directory.
func lockState(state string) (func(), error) {
	path := filepath.Join(state, "up.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another `bulkhead up` is running on %s (lock %s held)", state, path)
	}
	return func() { f.Close() }, nil
}
