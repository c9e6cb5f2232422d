// Package server publishes the control plane's output: the xDS of each
// proxy (built from the IR snapshot it is handed), in a snapshot cache keyed
// by proxy identity, served over ADS (state of the world and delta on one
// gRPC service), with ACK/NACK tracking per node. It knows the IR and the
// xDS layer, not the translation that produced them.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulkhead-mesh/bulkhead/control-plane/ir"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// Server holds the latest IR snapshot and serves it to every proxy.
type Server struct {
	// RequireProof refuses the streams of nodes that have not proved, with
	// the TLS client certificate of the xDS connection, the identity they
	// claim (production mode; see proof.go). Set before serving.
	RequireProof bool
	// Issuer issues the workload certificates of proven Envoy nodes (SDS);
	// nil: none are served. Set before serving.
	Issuer pki.Issuer

	log     *slog.Logger
	secrets secretCache
	cache   cachev3.SnapshotCache
	acks    *acks
	proofs  proofs
	ads     serverv3.Server

	mu       sync.Mutex
	snapshot ir.Snapshot
	proxies  map[string]*proxyState
	// remote are the Versions of proxies not connected here, for the
	// current snapshot.
	remote map[string]map[resourcev3.Type]string
}

// proxyState is what was published for one ProxyID.
type proxyState struct {
	id workload.ProxyID
	// good is the last configuration that built and validated, and
	// versions the per-type versions it was published under.
	good     xds.Resources
	versions map[resourcev3.Type]string
	// err is why the latest translation could not replace it (nil when the
	// latest is published).
	err error
	// warnings are the routes left out of the published configuration.
	warnings []error
}

// New returns a server with nothing published yet: proxies that connect
// before the first Publish wait for it.
func New(ctx context.Context, log *slog.Logger) *Server {
	s := &Server{
		log:     log,
		cache:   cachev3.NewSnapshotCache(false, nodeHash{}, nil),
		acks:    newAcks(),
		proxies: map[string]*proxyState{},
	}
	s.ads = serverv3.NewServer(ctx, s.cache, s.callbacks())
	go s.renewSecrets(ctx)
	return s
}

// Register serves ADS (SotW and delta) on a gRPC server.
func (s *Server) Register(g *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.ads)
}

// Publish makes a snapshot the current one and pushes it to every proxy
// that has connected. A proxy whose new configuration does not build or
// validate keeps its last good one; the error is logged and reported.
func (s *Server) Publish(ctx context.Context, snap ir.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshot = snap
	s.remote = nil
	keys := make([]string, 0, len(s.proxies))
	for k := range s.proxies {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.publishLocked(ctx, s.proxies[k])
	}
}

// ensure starts publishing to a ProxyID the first time one of its nodes
// connects.
func (s *Server) ensure(ctx context.Context, id workload.ProxyID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.proxies[id.String()]; ok {
		return
	}
	p := &proxyState{id: id}
	s.proxies[id.String()] = p
	if s.snapshot != nil {
		s.publishLocked(ctx, p)
	}
}

func (s *Server) publishLocked(ctx context.Context, p *proxyState) {
	res, warnings, err := xds.BuildWithWarnings(s.snapshot.Config(p.id))
	for _, w := range warnings {
		s.log.Warn("route left out", "proxy", p.id.String(), "error", w)
	}
	if err == nil {
		var secrets []types.Resource
		if secrets, err = s.secretsFor(ctx, p.id); err == nil && len(secrets) > 0 {
			res[resourcev3.SecretType] = secrets
		}
	}
	var versions map[resourcev3.Type]string
	if err == nil {
		var snap *cachev3.Snapshot
		if snap, versions, err = res.Snapshot(); err == nil {
			err = s.cache.SetSnapshot(ctx, p.id.String(), snap)
		}
	}
	if err != nil {
		p.err = fmt.Errorf("proxy %s keeps its last good configuration: %w", p.id, err)
		s.log.Error("configuration rejected before publishing", "proxy", p.id.String(), "error", err)
		return
	}
	p.good, p.versions, p.err, p.warnings = res, versions, nil, warnings
}

// ProxyRecord is what was last published to one proxy identity: the
// status stage compares it with what the proxy's nodes ACKed.
type ProxyRecord struct {
	ID workload.ProxyID
	// Versions are the per-type versions of the configuration last
	// published (nil: nothing yet); a node runs it when it has ACKed them.
	Versions map[resourcev3.Type]string
	// Pending is why the latest snapshot could not replace it (nil when it
	// did): the proxy keeps its last good configuration.
	Pending error
	// Warnings are what was left out of it (routes that failed
	// validation), each naming its input.
	Warnings []error
}

// Proxies returns the record of every proxy identity a node has asked
// for, sorted by identity.
func (s *Server) Proxies() []ProxyRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProxyRecord, 0, len(s.proxies))
	for _, p := range s.proxies {
		out = append(out, ProxyRecord{ID: p.id, Versions: p.versions, Pending: p.err, Warnings: p.warnings})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.String() < out[j].ID.String() })
	return out
}

// Published returns the resources last published to a ProxyID (nil if
// none) and why the latest translation was not, if it was not.
func (s *Server) Published(id workload.ProxyID) (xds.Resources, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proxies[id.String()]
	if p == nil {
		return nil, nil
	}
	return p.good, p.err
}

// Versions are the per-type versions this server publishes to a proxy
// identity, or would if one of its nodes connected here, leaving out the
// secrets (each replica issues its own certificates, so their versions
// differ): what a node connected to another replica of the same
// configuration has ACKed once it runs it. Nil before the first Publish.
func (s *Server) Versions(id workload.ProxyID) (map[resourcev3.Type]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.proxies[id.String()]; p != nil && p.err == nil && p.versions != nil {
		return withoutSecrets(p.versions), nil
	}
	if s.snapshot == nil {
		return nil, nil
	}
	if v, ok := s.remote[id.String()]; ok {
		return v, nil
	}
	res, _, err := xds.BuildWithWarnings(s.snapshot.Config(id))
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", id, err)
	}
	_, versions, err := res.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", id, err)
	}
	if s.remote == nil {
		s.remote = map[string]map[resourcev3.Type]string{}
	}
	s.remote[id.String()] = withoutSecrets(versions)
	return s.remote[id.String()], nil
}

func withoutSecrets(v map[resourcev3.Type]string) map[resourcev3.Type]string {
	out := make(map[resourcev3.Type]string, len(v))
	for typ, version := range v {
		if typ != resourcev3.SecretType {
			out[typ] = version
		}
	}
	return out
}

// Nodes returns the ACK/NACK state of every connected node.
func (s *Server) Nodes() []NodeState { return s.acks.nodes() }

func (s *Server) callbacks() serverv3.Callbacks {
	admit := func(ctx context.Context, stream int64, n *corev3.Node) (string, error) {
		id, err := ProxyOf(n)
		if err != nil {
			s.log.Warn("refused an xDS stream", "error", err)
			return "", err
		}
		if s.RequireProof {
			want := workload.Identity(id, DeclaredAccount(n))
			if got := s.proofs.of(stream); got != want {
				if got == "" {
					got = "no certificate"
				}
				err := status.Errorf(codes.PermissionDenied, "node %q claims %s, which requires the identity %s; its certificate says %s", n.GetId(), id, want, got)
				s.log.Warn("refused an xDS stream", "error", err)
				return "", err
			}
		}
		s.ensure(ctx, id)
		return id.String(), nil
	}
	return serverv3.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			s.proofs.open(ctx, id)
			s.acks.open(id)
			return nil
		},
		StreamClosedFunc: func(id int64, _ *corev3.Node) { s.acks.closed(id); s.proofs.closed(id) },
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			proxy, err := admit(context.Background(), id, req.GetNode())
			if err != nil {
				return err
			}
			s.acks.request(id, proxy, req)
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			s.acks.response(id, resp)
		},
		DeltaStreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			s.proofs.open(ctx, id)
			s.acks.open(id)
			return nil
		},
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { s.acks.closed(id); s.proofs.closed(id) },
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			proxy, err := admit(context.Background(), id, req.GetNode())
			if err != nil {
				return err
			}
			s.acks.deltaRequest(id, proxy, req)
			return nil
		},
		StreamDeltaResponseFunc: func(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			s.acks.deltaResponse(id, resp)
		},
	}
}
