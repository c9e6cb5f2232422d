// Package platform is the plumbing every Bulkhead service shares, written
// once: configuration and flags, secrets from Vault (AppRole), an
// xDS-enabled gRPC server with health and graceful stop, proxyless gRPC
// clients to the other services, PostgreSQL with embedded migrations, Redis,
// OpenTelemetry traces and metrics with a Prometheus endpoint, and slog logs
// that carry the request id.
//
// A service's main.go is wiring only:
//
//	func main() { platform.Main("users", nil, users.Setup()) }
//
// and its tests start the same Setup in process with Start.
//
// There is no retry, timeout or circuit-breaker code here or in the
// services: the control plane programs those into the gRPC clients from
// policies/ (DESIGN.md §5).
package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
)

// MeshPort is the port of every platform Service in policies/mesh: clients
// dial xds:///NAME.NAMESPACE:9000 and the control plane maps it to the
// endpoints.
const MeshPort = 9000

// Config is what a service needs to know about its place in the platform.
// Everything secret (database and Redis credentials, keys) comes from Vault.
type Config struct {
	// Name is the Service's name in policies/mesh (auth, users, ...). It
	// also names its Vault role and secret path (secret/bulkhead/NAME).
	Name string
	// Service is the mesh Service this process is an endpoint of (default
	// Name): auth's cache-only pool is Service auth-cache, the fallback
	// inference pool inference-fallback. It is the process's xDS identity.
	Service string
	// Namespace of the Service (default "default").
	Namespace string
	// Instance is unique per process (the xDS node id); default
	// NAME-HOSTNAME-PID.
	Instance string
	// GRPCAddress is where the gRPC server listens; it must be the address
	// of the process's EndpointSlice, which is how the control plane knows
	// which inbound listener it serves.
	GRPCAddress string
	// MetricsAddress serves Prometheus /metrics (empty: none).
	MetricsAddress string
	// Pprof also serves net/http/pprof's /debug/pprof/ there.
	Pprof bool
	// HealthAddress serves the gRPC health service alone, in plaintext, for
	// a kubelet's gRPC probes (empty: none). The mesh port is mTLS only;
	// this port answers nothing but SERVING or NOT_SERVING.
	HealthAddress string
	// XDSAddress is the control plane's ADS endpoint (host:port); XDSTLS
	// makes that connection mTLS with the workload certificate (production
	// mode: the process proves who it is).
	XDSAddress string
	XDSTLS     bool
	// Vault holds the AppRole login.
	Vault pki.VaultConfig
	// SecretsPath overrides the Vault KV path (default bulkhead/NAME):
	// auth's cache-only pool reads auth's secrets.
	SecretsPath string
	// CertDir is where the workload certificate is kept (default: a
	// private temporary directory removed at stop); CertTTL its lifetime
	// (default 1h; renewed at two thirds).
	CertDir string
	CertTTL time.Duration
	// Log receives the JSON logs (default stderr); LogLevel filters them.
	Log      io.Writer
	LogLevel slog.Level
	// ServingTimeout bounds how long Start waits for the control plane to
	// send the server its inbound listener (default 30s).
	ServingTimeout time.Duration
	// DrainTimeout bounds a graceful stop; calls still running after it are
	// cut (default 10s).
	DrainTimeout time.Duration
}

func (c *Config) defaults() error {
	if c.Name == "" {
		return errors.New("service name is required")
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.Service == "" {
		c.Service = c.Name
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s-%s-%d", c.Name, host, os.Getpid())
	}
	if c.GRPCAddress == "" {
		return errors.New("--grpc-address is required (the address of this process's EndpointSlice)")
	}
	if c.XDSAddress == "" {
		return errors.New("--xds-address is required (the control plane's ADS endpoint)")
	}
	if c.SecretsPath == "" {
		c.SecretsPath = "bulkhead/" + c.Name
	}
	if c.Log == nil {
		c.Log = os.Stderr
	}
	if c.ServingTimeout == 0 {
		c.ServingTimeout = 30 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.CertTTL == 0 {
		c.CertTTL = time.Hour
	}
	return nil
}

// Setup wires a service into its runtime: it registers its gRPC services on
// rt.GRPC, opens its stores, and may serve HTTP. It returns before serving.
type Setup func(ctx context.Context, rt *Runtime) error

// Runtime is what a service gets from the platform.
type Runtime struct {
	Config Config
	Log    *slog.Logger
	// Secrets is the service's Vault KV secret (bulkhead/NAME).
	Secrets Secrets
	// GRPC is the xDS-enabled server to register services on.
	GRPC grpc.ServiceRegistrar
	// Health reports SERVING once the service is ready; a service may set
	// it NOT_SERVING when a dependency it cannot do without is gone.
	Health    *health.Server
	Telemetry *Telemetry

	mesh     *mesh
	certs    *certs
	dbCreds  *dbCreds
	mu       sync.Mutex
	onStop   []func() error
	httpAddr []net.Addr
}

// OnStop registers fn to run at stop, after the gRPC server has drained,
// in reverse order of registration.
func (rt *Runtime) OnStop(fn func() error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.onStop = append(rt.onStop, fn)
}

// Service is a running service.
type Service struct {
	rt     *Runtime
	srv    stopper
	lis    net.Listener
	done   chan error
	stopCh chan struct{}
	once   sync.Once
	err    error
	cancel context.CancelFunc
}

type stopper interface {
	GracefulStop()
	Stop()
}

// Start runs setup in a new runtime and serves until Stop or ctx ends. It
// returns once the control plane has programmed the server's inbound
// listener (the server is SERVING) or fails.
func Start(ctx context.Context, cfg Config, setup Setup) (*Service, error) {
	if err := cfg.defaults(); err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	log := newLogger(cfg)
	ctx, cancel := context.WithCancel(ctx)
	rt := &Runtime{Config: cfg, Log: log, Health: health.NewServer()}
	s := &Service{rt: rt, done: make(chan error, 1), stopCh: make(chan struct{}), cancel: cancel}
	fail := func(err error) (*Service, error) {
		cancel()
		s.runStops()
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}

	tel, err := newTelemetry(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	rt.Telemetry = tel
	rt.OnStop(tel.Close)

	secrets, err := readSecrets(ctx, cfg, log)
	if err != nil {
		return fail(err)
	}
	rt.Secrets = secrets

	crt, err := startCerts(ctx, cfg, log)
	if err != nil {
		return fail(err)
	}
	rt.certs = crt
	rt.OnStop(crt.close)

	rt.mesh, err = newMesh(cfg, tel, log, crt.files)
	if err != nil {
		return fail(err)
	}
	rt.OnStop(rt.mesh.close)

	srv, serving, err := rt.mesh.newServer()
	if err != nil {
		return fail(err)
	}
	s.srv = srv
	rt.GRPC = srv
	healthpb.RegisterHealthServer(srv, rt.Health)
	// NOT_SERVING until setup is done.
	rt.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)

	if cfg.HealthAddress != "" {
		addr, err := rt.serveHealth(cfg.HealthAddress)
		if err != nil {
			return fail(fmt.Errorf("health address: %w", err))
		}
		log.Info("health", "address", addr.String())
	}
	if err := setup(ctx, rt); err != nil {
		return fail(err)
	}
	if cfg.MetricsAddress != "" {
		h := tel.Handler()
		if cfg.Pprof {
			h = withProfiles(h)
		}
		addr, err := rt.ServeHTTP(cfg.MetricsAddress, h)
		if err != nil {
			return fail(fmt.Errorf("metrics: %w", err))
		}
		log.Info("metrics", "address", "http://"+addr.String()+"/metrics")
		if cfg.Pprof {
			log.Warn("profiles served (--pprof): anyone who reaches the metrics address can read them", "address", "http://"+addr.String()+"/debug/pprof/")
		}
	}

	lis, err := net.Listen("tcp", cfg.GRPCAddress)
	if err != nil {
		return fail(fmt.Errorf("grpc address: %w", err))
	}
	s.lis = lis
	go func() { s.done <- srv.Serve(lis) }()

	select {
	case <-serving:
	case err := <-s.done:
		return fail(fmt.Errorf("grpc server: %w", err))
	case <-time.After(cfg.ServingTimeout):
		srv.Stop()
		return fail(fmt.Errorf("the control plane at %s did not send the inbound listener for %s within %s (is there an EndpointSlice of Service %s with this address?)",
			cfg.XDSAddress, lis.Addr(), cfg.ServingTimeout, cfg.Service))
	case <-ctx.Done():
		srv.Stop()
		return fail(ctx.Err())
	}
	for _, name := range rt.healthNames() {
		rt.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	log.Info("serving", "grpc", lis.Addr().String(), "xds", cfg.XDSAddress, "instance", cfg.Instance)
	go func() {
		select {
		case <-ctx.Done():
			s.Stop()
		case <-s.stopCh:
		}
	}()
	return s, nil
}

// serveHealth serves rt.Health alone on a plaintext gRPC server (the
// kubelet's probes), stopped with the service.
func (rt *Runtime) serveHealth(address string) (net.Addr, error) {
	lis, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	hs := grpc.NewServer()
	healthpb.RegisterHealthServer(hs, rt.Health)
	go func() { _ = hs.Serve(lis) }()
	rt.OnStop(func() error { hs.Stop(); return nil })
	return lis.Addr(), nil
}

func (rt *Runtime) healthNames() []string {
	names := []string{""}
	if r, ok := rt.GRPC.(interface {
		GetServiceInfo() map[string]grpc.ServiceInfo
	}); ok {
		for name := range r.GetServiceInfo() {
			names = append(names, name)
		}
	}
	return names
}

// Addr is the gRPC listener's address.
func (s *Service) Addr() net.Addr { return s.lis.Addr() }

// CertificatesIssued counts the workload certificates issued so far (the
// first at start, then each renewal).
func (s *Service) CertificatesIssued() int {
	n, _ := s.rt.certs.counts()
	return n
}

// DatabaseCredentialsIssued counts the database users obtained so far (0
// for a service without a database).
func (s *Service) DatabaseCredentialsIssued() int {
	if s.rt.dbCreds == nil {
		return 0
	}
	n, _ := s.rt.dbCreds.counts()
	return n
}

// RenewalFailures counts the certificate and database-credential renewals
// that failed (each is also logged).
func (s *Service) RenewalFailures() int {
	return s.CertificateRenewalFailures() + s.DatabaseRenewalFailures()
}

// CertificateRenewalFailures counts the workload certificate renewals that
// failed.
func (s *Service) CertificateRenewalFailures() int {
	_, n := s.rt.certs.counts()
	return n
}

// DatabaseRenewalFailures counts the database-credential renewals that
// failed (0 for a service without a database).
func (s *Service) DatabaseRenewalFailures() int {
	if s.rt.dbCreds == nil {
		return 0
	}
	_, n := s.rt.dbCreds.counts()
	return n
}

// Runtime gives tests access to what the service was given.
func (s *Service) Runtime() *Runtime { return s.rt }

// HTTPAddrs are the addresses of the HTTP servers started with ServeHTTP,
// in order.
func (s *Service) HTTPAddrs() []net.Addr {
	s.rt.mu.Lock()
	defer s.rt.mu.Unlock()
	return append([]net.Addr(nil), s.rt.httpAddr...)
}

// Stop stops gracefully: health goes NOT_SERVING, new calls are refused,
// calls in flight finish (bounded by DrainTimeout), then the stores close.
func (s *Service) Stop() error {
	s.once.Do(func() {
		close(s.stopCh)
		s.rt.Health.Shutdown()
		drained := make(chan struct{})
		go func() { s.srv.GracefulStop(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(s.rt.Config.DrainTimeout):
			s.rt.Log.Warn("drain timeout: cutting the calls still running", "timeout", s.rt.Config.DrainTimeout)
			s.srv.Stop()
			<-drained
		}
		if err := <-s.done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.err = err
		}
		s.cancel()
		s.err = errors.Join(s.err, s.runStops())
		s.rt.Log.Info("stopped")
	})
	return s.err
}

// Kill stops at once, as a crash would: connections are closed under the
// calls in flight. For tests of the mesh's failover.
func (s *Service) Kill() {
	s.srv.Stop()
	s.Stop()
}

func (s *Service) runStops() error {
	s.rt.mu.Lock()
	fns := s.rt.onStop
	s.rt.onStop = nil
	s.rt.mu.Unlock()
	var errs []error
	for i := len(fns) - 1; i >= 0; i-- {
		errs = append(errs, fns[i]())
	}
	return errors.Join(errs...)
}
