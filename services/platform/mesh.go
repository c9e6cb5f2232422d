package platform

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"

	"github.com/bulkhead-mesh/bulkhead/internal/grpcbootstrap"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
)

// mesh is the service's place on the proxyless mesh: one xDS bootstrap (its
// node identity) shared by its server and its clients.
type mesh struct {
	cfg       Config
	tel       *Telemetry
	log       *slog.Logger
	bootstrap []byte

	mu       sync.Mutex
	resolver resolver.Builder
	conns    map[string]*grpc.ClientConn
}

func newMesh(cfg Config, tel *Telemetry, log *slog.Logger, certs pki.CertFiles) (*mesh, error) {
	bs, err := grpcbootstrap.JSON(grpcbootstrap.Options{
		NodeID:         cfg.Instance,
		Proxy:          workload.ProxyID{Role: workload.RoleGRPC, Namespace: cfg.Namespace, Name: cfg.Service},
		ServiceAccount: cfg.Name,
		XDSAddress:     cfg.XDSAddress,
		XDSTLS:         cfg.XDSTLS,
		// Whether mTLS is used is the control plane's call (the Service's
		// SecurityPolicy); the certificates are always at hand.
		Certificates: &grpcbootstrap.CertificateFiles{
			Certificate: certs.Certificate, PrivateKey: certs.PrivateKey, CA: certs.CA,
			RefreshInterval: time.Second,
		},
	})
	if err != nil {
		return nil, err
	}
	return &mesh{cfg: cfg, tel: tel, log: log, bootstrap: bs, conns: map[string]*grpc.ClientConn{}}, nil
}

// newServer is the xDS-enabled gRPC server: the control plane programs its
// inbound listener (and, with the zero-trust issue, its TLS and RBAC). It
// serves nothing until that listener arrives; serving is closed then.
func (m *mesh) newServer() (*xds.GRPCServer, <-chan struct{}, error) {
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return nil, nil, err
	}
	serving := make(chan struct{})
	var once sync.Once
	srv, err := xds.NewGRPCServer(
		grpc.Creds(creds),
		xds.BootstrapContentsForTesting(m.bootstrap),
		xds.ServingModeCallback(func(addr net.Addr, args xds.ServingModeChangeArgs) {
			if args.Mode == connectivity.ServingModeServing {
				m.log.Info("inbound listener programmed: serving", "address", addr.String())
				once.Do(func() { close(serving) })
				return
			}
			m.log.Warn("inbound listener not programmed: not serving", "address", addr.String(), "error", args.Err)
		}),
		grpc.StatsHandler(otelgrpc.NewServerHandler(m.tel.otelOptions()...)),
		grpc.ChainUnaryInterceptor(m.unaryServer),
		grpc.ChainStreamInterceptor(m.streamServer),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("xds server: %w", err)
	}
	return srv, serving, nil
}

// Dial returns the connection to a platform Service through the mesh
// (xds:///NAME.NAMESPACE:9000): routes, load balancing, retries, timeouts,
// outlier detection and failover are whatever policies/ says. Connections
// are shared per Service and closed at stop.
func (rt *Runtime) Dial(service string) (*grpc.ClientConn, error) {
	return rt.mesh.dial(service)
}

// DialAll dials several Services, in order.
func (rt *Runtime) DialAll(services ...string) ([]*grpc.ClientConn, error) {
	out := make([]*grpc.ClientConn, len(services))
	for i, svc := range services {
		cc, err := rt.mesh.dial(svc)
		if err != nil {
			return nil, err
		}
		out[i] = cc
	}
	return out, nil
}

func (m *mesh) dial(service string) (*grpc.ClientConn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cc, ok := m.conns[service]; ok {
		return cc, nil
	}
	if m.resolver == nil {
		r, err := xds.NewXDSResolverWithConfigForTesting(m.bootstrap)
		if err != nil {
			return nil, fmt.Errorf("xds resolver: %w", err)
		}
		m.resolver = r
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return nil, err
	}
	target := fmt.Sprintf("xds:///%s.%s:%d", service, m.cfg.Namespace, MeshPort)
	cc, err := grpc.NewClient(target,
		grpc.WithResolvers(m.resolver),
		grpc.WithTransportCredentials(creds),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(m.tel.otelOptions()...)),
		grpc.WithChainUnaryInterceptor(propagateUnary),
		grpc.WithChainStreamInterceptor(propagateStream),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	m.conns[service] = cc
	return cc, nil
}

func (m *mesh) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, cc := range m.conns {
		cc.Close()
		delete(m.conns, name)
	}
	return nil
}

// unaryServer puts the request id in the context and logs calls that end
// in a server-side error.
func (m *mesh) unaryServer(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	ctx = withIncomingRequestID(ctx)
	t0 := time.Now()
	defer func() {
		if p := recover(); p != nil {
			err = m.recovered(ctx, info.FullMethod, p)
		}
		m.logCall(ctx, info.FullMethod, t0, err)
	}()
	return handler(ctx, req)
}

func (m *mesh) streamServer(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	ctx := withIncomingRequestID(ss.Context())
	t0 := time.Now()
	defer func() {
		if p := recover(); p != nil {
			err = m.recovered(ctx, info.FullMethod, p)
		}
		m.logCall(ctx, info.FullMethod, t0, err)
	}()
	return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
}

// recovered turns a handler's panic into INTERNAL for that call alone: one
// bad request must not take down every call the process serves.
func (m *mesh) recovered(ctx context.Context, method string, p any) error {
	m.log.ErrorContext(ctx, "handler panic", "method", method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return status.Error(codes.Internal, "internal error")
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// logCall logs the calls that failed on this side; a caller's mistake
// (invalid argument, not found, ...) is the caller's to report.
func (m *mesh) logCall(ctx context.Context, method string, t0 time.Time, err error) {
	switch status.Code(err) {
	case codes.OK, codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists,
		codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition, codes.ResourceExhausted, codes.OutOfRange:
		m.log.DebugContext(ctx, "call", "method", method, "code", status.Code(err).String(), "duration", time.Since(t0))
	default:
		m.log.WarnContext(ctx, "call failed", "method", method, "code", status.Code(err).String(), "error", err, "duration", time.Since(t0))
	}
}

func propagateUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(outgoingRequestID(ctx), method, req, reply, cc, opts...)
}

func propagateStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(outgoingRequestID(ctx), desc, cc, method, opts...)
}
