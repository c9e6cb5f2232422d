// Package controlplane wires the pipeline of DESIGN.md §4, one direction:
// provider → (debounce) → translate → xds → server. cmd/control-plane is
// flag parsing around it; tests start it in process.
package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/bulkhead-mesh/bulkhead/control-plane/admin"
	"github.com/bulkhead-mesh/bulkhead/control-plane/kubestatus"
	"github.com/bulkhead-mesh/bulkhead/control-plane/peers"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider/file"
	"github.com/bulkhead-mesh/bulkhead/control-plane/server"
	"github.com/bulkhead-mesh/bulkhead/control-plane/status"
	"github.com/bulkhead-mesh/bulkhead/control-plane/translate"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Options configures the control plane.
type Options struct {
	// ConfigDirs are the directories of YAML the file provider watches, read
	// as one input (universal mode).
	ConfigDirs []string
	// Provider, when set, is the input instead (Kubernetes mode:
	// provider/kubernetes).
	Provider provider.Provider
	// XDSAddress is where ADS is served (host:port; port 0 picks one).
	XDSAddress string
	// AdminAddress serves the admin endpoint (empty: none).
	AdminAddress string
	Log          *slog.Logger
	// TLS, when set, makes the xDS connection mTLS (production mode): the
	// control plane presents its certificate, requires a client
	// certificate that chains to CA, and admits a node only when that
	// certificate proves the identity the node claims. Files are re-read
	// on each handshake, so they can be rotated in place.
	TLS *TLSFiles
	// Issuer issues the workload certificates the control plane serves
	// over SDS to proven Envoy nodes (production mode only).
	Issuer pki.Issuer
	// StatusWriter, when set, writes the status report back to the
	// Kubernetes objects (Kubernetes mode), at most once per StatusInterval
	// (default 1s), after each translation and as proxies ACK or NACK.
	StatusWriter   *kubestatus.Writer
	StatusInterval time.Duration
	// StatusSettle is how long after this replica starts writing status
	// (at start, or on becoming the leader) proxies are given to reconnect
	// before an object they had programmed is reported NoProxyConnected
	// or Pending (default 15s; see package kubestatus).
	StatusSettle time.Duration
	// Leader, when set, elects the one replica that writes status; without
	// it this control plane always does.
	Leader *LeaderElection
	// Debounce is the quiet time awaited after a change before translating
	// (default 100ms); MaxDelay bounds the wait under a continuous stream of
	// changes (default 1s).
	Debounce time.Duration
	MaxDelay time.Duration
}

// TLSFiles are PEM files: the control plane's certificate (chain) and key,
// and the trust bundle its clients' certificates must chain to.
type TLSFiles struct {
	Certificate, PrivateKey, CA string
}

func (f *TLSFiles) serverConfig() (*tls.Config, error) {
	load := func() (*tls.Certificate, *x509.CertPool, error) {
		pair, err := tls.LoadX509KeyPair(f.Certificate, f.PrivateKey)
		if err != nil {
			return nil, nil, err
		}
		ca, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, nil, fmt.Errorf("%s: no certificate", f.CA)
		}
		return &pair, pool, nil
	}
	if _, _, err := load(); err != nil {
		return nil, fmt.Errorf("control plane: xds TLS: %w", err)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			pair, pool, err := load()
			if err != nil {
				return nil, err
			}
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*pair},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    pool,
			}, nil
		},
	}, nil
}

// ControlPlane is a running control plane.
type ControlPlane struct {
	Server *server.Server

	lis    net.Listener
	grpc   *grpc.Server
	admin  *http.Server
	adminL net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error

	resultMu sync.Mutex
	result   *translate.Result
	updated  chan struct{}

	translations atomic.Int64
	// leading: this replica writes status (leader.go).
	leading atomic.Bool
	// peerNodes are the other replicas' connected nodes, as last read
	// (package peers).
	peerNodes atomic.Pointer[[]server.NodeState]
}

// Start starts serving and translating; Stop ends both.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	if len(opts.ConfigDirs) == 0 && opts.Provider == nil {
		return nil, errors.New("control plane: a config directory (universal mode) or a provider (Kubernetes mode) is required")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Debounce == 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	if opts.MaxDelay == 0 {
		opts.MaxDelay = time.Second
	}
	var (
		le     LeaderElection
		shared *peers.Peers
	)
	if opts.Leader != nil {
		le = opts.Leader.withDefaults()
		if opts.StatusWriter != nil {
			// Several replicas: each shares its proxies' ACKs with the
			// leader, which judges them all.
			cs, err := k8s.NewForConfig(le.Config)
			if err != nil {
				return nil, fmt.Errorf("control plane: peers: %w", err)
			}
			shared = &peers.Peers{Client: cs, Namespace: le.Namespace, Name: le.Name, Identity: le.Identity}
		}
	}
	lis, err := net.Listen("tcp", opts.XDSAddress)
	if err != nil {
		return nil, fmt.Errorf("control plane: xds address: %w", err)
	}
	gopts := []grpc.ServerOption{
		grpc.MaxConcurrentStreams(1 << 20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if opts.TLS != nil {
		conf, err := opts.TLS.serverConfig()
		if err != nil {
			lis.Close()
			return nil, err
		}
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(conf)))
	}
	ctx, cancel := context.WithCancel(ctx)
	cp := &ControlPlane{
		Server:  server.New(ctx, opts.Log),
		lis:     lis,
		cancel:  cancel,
		updated: make(chan struct{}),
		grpc:    grpc.NewServer(gopts...),
	}
	cp.Server.RequireProof = opts.TLS != nil
	cp.Server.Issuer = opts.Issuer
	cp.Server.Register(cp.grpc)
	if opts.AdminAddress != "" {
		al, err := net.Listen("tcp", opts.AdminAddress)
		if err != nil {
			lis.Close()
			cancel()
			return nil, fmt.Errorf("control plane: admin address: %w", err)
		}
		cp.adminL = al
		cp.admin = &http.Server{Handler: admin.Handler(cp), ReadHeaderTimeout: 5 * time.Second}
		cp.wg.Add(1)
		go func() {
			defer cp.wg.Done()
			if err := cp.admin.Serve(al); err != nil && !errors.Is(err, http.ErrServerClosed) {
				cp.fail(fmt.Errorf("admin server: %w", err))
			}
		}()
	}

	updates := make(chan provider.Update)
	prov := opts.Provider
	if prov == nil {
		prov = &file.Provider{Dirs: opts.ConfigDirs, Log: opts.Log}
	}
	cp.wg.Add(3)
	go func() {
		defer cp.wg.Done()
		if err := cp.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			cp.fail(fmt.Errorf("xds server: %w", err))
		}
	}()
	go func() {
		defer cp.wg.Done()
		if err := prov.Run(ctx, updates); err != nil {
			cp.fail(err)
		}
	}()
	go func() {
		defer cp.wg.Done()
		cp.loop(ctx, opts, updates)
	}()
	cp.leading.Store(opts.Leader == nil)
	if opts.Leader != nil {
		cp.wg.Add(1)
		go func() {
			defer cp.wg.Done()
			if err := cp.elect(ctx, le, opts.Log); err != nil {
				cp.fail(err)
			}
		}()
	}
	if opts.StatusWriter != nil {
		interval, settle := opts.StatusInterval, opts.StatusSettle
		if interval == 0 {
			interval = time.Second
		}
		if settle == 0 {
			settle = 15 * time.Second
		}
		cp.wg.Add(1)
		go func() {
			defer cp.wg.Done()
			cp.writeStatus(ctx, opts.StatusWriter, shared, interval, settle, opts.Log)
		}()
	}
	return cp, nil
}

// loop debounces the provider's updates and translates the latest of each
// burst.
func (cp *ControlPlane) loop(ctx context.Context, opts Options, updates <-chan provider.Update) {
	d := debouncer{quiet: opts.Debounce, maxDelay: opts.MaxDelay, after: time.After}
	d.run(ctx, updates, func(u provider.Update) { cp.translate(ctx, opts.Log, u) })
}

// translate runs the pipeline on one input snapshot: translate, publish to
// the proxies, keep the result for the status stage.
func (cp *ControlPlane) translate(ctx context.Context, log *slog.Logger, u provider.Update) {
	start := time.Now()
	cp.translations.Add(1)
	// A policy whose new version cannot apply keeps the version the
	// previous translation had in force.
	var opts translate.Options
	if prev, _ := cp.Result(); prev != nil {
		opts.Accepted = prev.Accepted
	}
	r := translate.TranslateWith(u.Resources, opts)
	if u.Err != nil {
		r.Errors = append(splitJoined(u.Err), r.Errors...)
	}
	cp.Server.Publish(ctx, r)
	if err := r.Err(); err != nil {
		log.Warn("configuration has problems; the rest is applied", "errors", err.Error())
	}
	log.Info("translated", "duration", time.Since(start).String(), "clusters", len(r.Clusters), "listeners", len(r.ClientListeners))
	cp.resultMu.Lock()
	cp.result = r
	close(cp.updated)
	cp.updated = make(chan struct{})
	cp.resultMu.Unlock()
}

// writeStatus writes the status report at most once per interval: what
// changed since the last write (a translation, an ACK or a NACK) reaches
// the objects within an interval, and an unchanged report writes nothing.
// For settle after it starts leading, proxies are reconnecting: what they
// had programmed is not reported lost meanwhile.
//
// With peers (several replicas), every replica shares its nodes' ACKs and
// the leader judges its own and the other replicas' nodes together.
func (cp *ControlPlane) writeStatus(ctx context.Context, w *kubestatus.Writer, shared *peers.Peers, interval, settle time.Duration, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	if shared != nil {
		defer func() {
			// A clean stop takes this replica's nodes away at once.
			stopCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = shared.Withdraw(stopCtx)
		}()
	}
	var since time.Time // leading since (zero: not leading)
	var sharedErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if shared != nil {
			err := shared.Publish(ctx, cp.Server.Nodes(), time.Now())
			if err == nil {
				var others []server.NodeState
				if others, err = shared.Others(ctx, time.Now()); err == nil {
					for _, n := range others {
						// Each replica issues its own certificates: their
						// versions are not comparable.
						delete(n.Types, resourcev3.SecretType)
					}
					cp.peerNodes.Store(&others)
				}
			}
			if msg := fmt.Sprint(err); err != nil && msg != sharedErr && ctx.Err() == nil {
				log.Warn("sharing proxy state with the other replicas", "error", err)
			}
			sharedErr = fmt.Sprint(err)
		}
		if !cp.leading.Load() {
			since = time.Time{}
			continue // another replica writes
		}
		if since.IsZero() {
			since = time.Now()
		}
		rep, ok := cp.Status()
		if !ok {
			continue
		}
		n, err := w.Write(ctx, rep, time.Since(since) < settle)
		if err != nil && ctx.Err() == nil {
			log.Warn("writing status", "error", err)
		}
		if n > 0 {
			log.Debug("status written", "objects", n)
		}
	}
}

// Result returns the latest translation (nil before the first) and a
// channel closed when a newer one is published.
func (cp *ControlPlane) Result() (*translate.Result, <-chan struct{}) {
	cp.resultMu.Lock()
	defer cp.resultMu.Unlock()
	return cp.result, cp.updated
}

// Status is the status report of the latest translation and of what the
// proxies did with it (false before the first translation): the same on
// every replica, the one written back and the one the admin endpoint
// serves. With several replicas it judges also the nodes connected to the
// others (package peers), each against what this replica would publish to
// its proxy (secrets aside, which each replica issues itself); a node
// connected here is judged from here.
func (cp *ControlPlane) Status() (status.Report, bool) {
	r, _ := cp.Result()
	if r == nil {
		return status.Report{}, false
	}
	proxies, nodes := cp.Server.Proxies(), cp.Server.Nodes()
	var others []server.NodeState
	if p := cp.peerNodes.Load(); p != nil {
		others = *p
	}
	if len(others) > 0 {
		known, here := map[string]bool{}, map[string]bool{}
		for _, p := range proxies {
			known[p.ID.String()] = true
		}
		for _, n := range nodes {
			here[n.NodeID] = true
		}
		for _, n := range others {
			if here[n.NodeID] {
				continue
			}
			here[n.NodeID] = true
			id, err := workload.ParseProxyID(n.Proxy)
			if err != nil {
				continue
			}
			nodes = append(nodes, n)
			if known[n.Proxy] {
				continue // judged against this replica's record (its secrets unasked)
			}
			known[n.Proxy] = true
			versions, err := cp.Server.Versions(id)
			proxies = append(proxies, server.ProxyRecord{ID: id, Versions: versions, Pending: err})
		}
	}
	return status.Compute(r, proxies, nodes), true
}

// Translations counts the translations run so far (debouncing folds a burst
// of changes into one).
func (cp *ControlPlane) Translations() int64 { return cp.translations.Load() }

// XDS is the xDS server; for the admin endpoint.
func (cp *ControlPlane) XDS() *server.Server { return cp.Server }

// AdminAddr is the admin endpoint's address ("" when not served).
func (cp *ControlPlane) AdminAddr() string {
	if cp.adminL == nil {
		return ""
	}
	return cp.adminL.Addr().String()
}

// XDSAddr is the address ADS is served on.
func (cp *ControlPlane) XDSAddr() string { return cp.lis.Addr().String() }

func (cp *ControlPlane) fail(err error) {
	cp.errMu.Lock()
	defer cp.errMu.Unlock()
	cp.err = errors.Join(cp.err, err)
}

// Stop stops serving (open streams end) and translating.
func (cp *ControlPlane) Stop() error {
	cp.cancel()
	cp.grpc.Stop()
	if cp.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = cp.admin.Shutdown(ctx)
		cancel()
	}
	cp.wg.Wait()
	cp.errMu.Lock()
	defer cp.errMu.Unlock()
	return cp.err
}

// Offline reads directories and translates them as the running control
// plane would, for `bulkhead translate` and `bulkhead validate`. The result's
// Errors include what could not be read.
func Offline(dirs ...string) *translate.Result {
	res, err := file.Load(dirs...)
	r := translate.Translate(res)
	if err != nil {
		r.Errors = append(splitJoined(err), r.Errors...)
	}
	return r
}

// splitJoined flattens errors.Join trees into their leaves.
func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, splitJoined(e)...)
		}
		return out
	}
	return []error{err}
}
