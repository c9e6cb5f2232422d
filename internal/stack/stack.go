// Package stack runs the platform in one test process: real PostgreSQL,
// Redis and Vault processes, the control plane on the repository's
// policies/mesh plus an endpoints directory, provisioning as `bulkhead up`
// does it, and services started in process on the proxyless mesh (each
// with its own xDS client, exactly as in its own process).
package stack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
)

// Stack is a running test platform.
type Stack struct {
	t        testing.TB
	Postgres *components.Postgres
	Redis    *components.Redis
	Vault    *components.Vault
	// Kafka keeps its data in a directory, so a test can stop it and
	// start it again with what it had.
	Kafka        *components.Kafka
	ControlPlane *controlplane.ControlPlane
	EndpointsDir string
	Creds        map[string]provision.Credentials
	// Operator is the tests' identity on the mesh (SPIFFE sa/operator).
	Operator pki.CertFiles

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// New starts the dependencies, the control plane and the provisioning;
// tune adjusts the provisioning (e.g. shorter credential lifetimes).
func New(t testing.TB, tune ...func(*provision.Options)) *Stack {
	t.Helper()
	s := &Stack{t: t, conns: map[string]*grpc.ClientConn{}}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.Postgres = startPostgres(t) }()
	go func() { defer wg.Done(); s.Redis = testenv.NewRedis(t) }()
	go func() { defer wg.Done(); s.Vault = testenv.NewVault(t) }()
	s.Kafka = testenv.NewKafka(t, components.KafkaOptions{DataDir: t.TempDir()})
	wg.Wait()
	if t.Failed() || s.Postgres == nil || s.Redis == nil || s.Vault == nil {
		t.FailNow()
	}
	s.EndpointsDir = t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	po := provision.Options{
		PostgresAdminDSN: s.Postgres.DSN(),
		PostgresHost:     s.Postgres.Host,
		PostgresPort:     s.Postgres.Port,
		RedisAddr:        s.Redis.Addr,
		RedisPassword:    s.Redis.Password,
		VaultAddr:        s.Vault.Addr,
		VaultToken:       s.Vault.RootToken,
		Dir:              t.TempDir(),
		Kafka:            &provision.KafkaAdmin{Seeds: s.Kafka.Seeds, User: s.Kafka.AdminUser, Password: s.Kafka.AdminPassword},
	}
	for _, f := range tune {
		f(&po)
	}
	prov, err := provision.Provision(ctx, po)
	if err != nil {
		t.Fatal(err)
	}
	s.Creds, s.Operator = prov.Credentials, prov.Operator

	// Production mode: the xDS connection is mTLS and every node proves
	// its identity; Envoy nodes would get their certificates over SDS.
	v, err := pki.Client(s.Vault.Addr, s.Vault.RootToken)
	if err != nil {
		t.Fatal(err)
	}
	cpCerts := pki.CertFilesIn(filepath.Join(t.TempDir(), "control-plane"))
	if _, err := provision.IssueControlPlaneCert(ctx, v, cpCerts); err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.Start(t.Context(), controlplane.Options{
		ConfigDirs:   []string{filepath.Join(RepoRoot(), "policies", "mesh"), s.EndpointsDir},
		XDSAddress:   "127.0.0.1:0",
		AdminAddress: "127.0.0.1:0",
		TLS:          &controlplane.TLSFiles{Certificate: cpCerts.Certificate, PrivateKey: cpCerts.PrivateKey, CA: cpCerts.CA},
		Issuer:       pki.VaultIssuer{Client: v},
		Log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		Debounce:     20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Stop() })
	s.ControlPlane = cp
	return s
}

func startPostgres(t testing.TB) *components.Postgres {
	dir := testenv.ReachableTempDir(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	pg, err := components.StartPostgres(ctx, components.PostgresOptions{Dir: filepath.Join(dir, "pg")})
	if err != nil {
		t.Error(err)
		return nil
	}
	t.Cleanup(func() { pg.Close() })
	return pg
}

// Options of one service process.
type Options struct {
	// Instance names the process (default SERVICE-N).
	Instance string
	// Service is the mesh Service it is an endpoint of (default the
	// service's own name; e.g. "auth-cache" or "inference-fallback").
	Service string
	// Config adjusts the platform configuration.
	Config func(*platform.Config)
}

// StartService runs one process of service on the mesh: a free port, its
// EndpointSlice file, then the service itself. It stops with the test.
func (s *Stack) StartService(name string, setup platform.Setup, o Options) *platform.Service {
	s.t.Helper()
	if o.Service == "" {
		o.Service = name
	}
	if o.Instance == "" {
		o.Instance = fmt.Sprintf("%s-%d", o.Service, time.Now().UnixNano()%100000)
	}
	cred, ok := s.Creds[name]
	if !ok {
		s.t.Fatalf("stack: no credentials for service %q", name)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr := freeAddr(s.t)
		if _, err := provision.WriteEndpoint(s.EndpointsDir, o.Service, o.Instance, addr, nil); err != nil {
			s.t.Fatal(err)
		}
		cfg := platform.Config{
			Name:           name,
			Service:        o.Service,
			Instance:       o.Instance,
			GRPCAddress:    addr.String(),
			XDSAddress:     s.ControlPlane.XDSAddr(),
			XDSTLS:         true,
			Vault:          pki.VaultConfig{Address: s.Vault.Addr, RoleID: cred.RoleID, SecretIDFile: cred.SecretIDFile},
			Log:            testLog{s.t, o.Instance},
			LogLevel:       slog.LevelWarn,
			ServingTimeout: 30 * time.Second,
			DrainTimeout:   5 * time.Second,
		}
		if o.Config != nil {
			o.Config(&cfg)
		}
		svc, err := platform.Start(s.t.Context(), cfg, setup)
		if err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "address already in use") {
				continue
			}
			s.t.Fatal(err)
		}
		s.t.Cleanup(func() { svc.Stop() })
		return svc
	}
	s.t.Fatal(lastErr)
	return nil
}

// RemoveEndpoint deletes an instance's EndpointSlice file, as `bulkhead
// up` does when a process exits.
func (s *Stack) RemoveEndpoint(instance string) {
	os.Remove(filepath.Join(s.EndpointsDir, instance+".yaml"))
}

// Dial returns a connection to a Service through the mesh, as the
// operator (tests' identity, with its workload certificate) would make it.
func (s *Stack) Dial(service string) *grpc.ClientConn {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if cc, ok := s.conns[service]; ok {
		return cc
	}
	cc, err := provision.Operator(s.ControlPlane.XDSAddr(), "operator-"+s.t.Name(), s.Operator, true).Dial(service)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cc.Close() })
	s.conns[service] = cc
	return cc
}

func freeAddr(t testing.TB) *net.TCPAddr {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr)
}

// testLog sends a service's logs to the test log.
type testLog struct {
	t    testing.TB
	name string
}

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(w.name + ": " + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
