package components

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// RateLimit is a running envoyproxy/ratelimit (built into bin/ by `make
// tools`), counting in Redis, its rules served by the control plane over
// xDS (SotW ADS, node role ratelimit).
type RateLimit struct {
	// GRPCAddr serves envoy.service.ratelimit.v3.RateLimitService.
	GRPCAddr string
	// DebugAddr serves /rlconfig (the rules loaded) and /stats.
	DebugAddr string
	// MetricsAddr serves the Prometheus metrics.
	MetricsAddr string
	Dir         string

	proc    *process
	tempDir bool
}

// RateLimitOptions configures StartRateLimit.
type RateLimitOptions struct {
	// Dir keeps the log; "" uses a temporary directory removed by Close.
	Dir string
	// GRPCPort to listen on; 0 picks a free one.
	GRPCPort int
	// XDSAddress of the control plane.
	XDSAddress string
	// Proxy is the node's identity, "ratelimit/NAMESPACE/NAME".
	Proxy string
	// RedisAddr, RedisUser ("" for the default user) and RedisPassword of
	// the counters' Redis; KeyPrefix starts every key ("ratelimit:" for an
	// ACL user limited to those).
	RedisAddr, RedisUser, RedisPassword, KeyPrefix string
	// XDSTLS, when set, makes the xDS connection mTLS with this client
	// certificate (the control plane in production mode admits only nodes
	// that prove their identity).
	XDSTLS *TLSFiles
}

// TLSFiles are a certificate, its key and the CA bundle that verifies the
// peer, as PEM files.
type TLSFiles struct{ Certificate, PrivateKey, CA string }

// StartRateLimit starts the rate-limit service and waits until it serves.
func StartRateLimit(ctx context.Context, opts RateLimitOptions) (*RateLimit, error) {
	bin, err := toolBinary("ratelimit")
	if err != nil {
		return nil, err
	}
	if opts.Proxy == "" {
		opts.Proxy = "ratelimit/default/ratelimit"
	}
	r := &RateLimit{}
	setDir := func(dir string, temp bool) { r.Dir, r.tempDir = dir, temp }
	if err := startIn(opts.Dir, "ratelimit", opts.GRPCPort, setDir, func(port int) error { return r.start(ctx, bin, port, opts) }); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *RateLimit) start(ctx context.Context, bin string, grpcPort int, opts RateLimitOptions) error {
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	r.GRPCAddr = fmt.Sprintf("127.0.0.1:%d", grpcPort)
	r.DebugAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	r.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
	env := append(os.Environ(),
		"HOST=127.0.0.1", fmt.Sprintf("PORT=%d", ports[0]),
		"GRPC_HOST=127.0.0.1", fmt.Sprintf("GRPC_PORT=%d", grpcPort),
		"DEBUG_HOST=127.0.0.1", fmt.Sprintf("DEBUG_PORT=%d", ports[1]),
		"USE_STATSD=false", "USE_PROMETHEUS=true", "PROMETHEUS_ADDR="+r.MetricsAddr,
		// Per-rule counters (hits, over limit, shadow mode) reach the
		// Prometheus endpoint at each flush.
		"STATS_FLUSH_INTERVAL=1s",
		"LOG_LEVEL=warn", "LOG_FORMAT=json",
		"BACKEND_TYPE=redis", "REDIS_SOCKET_TYPE=tcp", "REDIS_TYPE=SINGLE", "REDIS_URL="+opts.RedisAddr,
		// The rules come from the control plane, never from a file.
		"CONFIG_TYPE=GRPC_XDS_SOTW",
		"CONFIG_GRPC_XDS_SERVER_URL="+opts.XDSAddress,
		"CONFIG_GRPC_XDS_NODE_ID="+strings.ReplaceAll(opts.Proxy, "/", "-")+"-"+randomHex(4),
		"CONFIG_GRPC_XDS_NODE_METADATA=bulkhead="+opts.Proxy,
		"CONFIG_GRPC_XDS_SERVER_CONNECT_RETRY_INTERVAL=500ms",
	)
	if opts.KeyPrefix != "" {
		env = append(env, "CACHE_KEY_PREFIX="+opts.KeyPrefix)
	}
	if t := opts.XDSTLS; t != nil {
		env = append(env, "CONFIG_GRPC_XDS_SERVER_USE_TLS=true",
			"CONFIG_GRPC_XDS_CLIENT_TLS_CERT="+t.Certificate, "CONFIG_GRPC_XDS_CLIENT_TLS_KEY="+t.PrivateKey,
			"CONFIG_GRPC_XDS_SERVER_TLS_CACERT="+t.CA)
	}
	// The Redis password goes through the environment, which only this
	// user can read, never the command line.
	auth := opts.RedisPassword
	if opts.RedisUser != "" {
		auth = opts.RedisUser + ":" + auth
	}
	env = append(env, "REDIS_AUTH="+auth)
	proc, err := startProcess("ratelimit", bin, nil, env, filepath.Join(r.Dir, "ratelimit.log"), nil)
	if err != nil {
		return err
	}
	r.proc = proc
	err = proc.waitReady(ctx, 60*time.Second, func(ctx context.Context) error {
		_, err := r.get(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthcheck", ports[0]))
		return err
	})
	if err != nil {
		return stopAfterFailedStart(proc, syscall.SIGTERM, err)
	}
	return nil
}

// Config returns the rules the service has loaded (its /rlconfig page: one
// line per limit, "DOMAIN.KEY_VALUE...: unit=MINUTE requests_per_unit=N,
// shadow_mode: false, ...").
func (r *RateLimit) Config(ctx context.Context) (string, error) {
	return r.get(ctx, "http://"+r.DebugAddr+"/rlconfig")
}

func (r *RateLimit) get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	return string(b), nil
}

// LogTail is the end of its log.
func (r *RateLimit) LogTail() string { return r.proc.logTail() }

// Close stops the service and removes a temporary directory.
func (r *RateLimit) Close() error {
	return stopServer(r.proc, syscall.SIGTERM, 10*time.Second, r.Dir, r.tempDir)
}

// Metrics returns its Prometheus metrics (text exposition).
func (r *RateLimit) Metrics(ctx context.Context) (string, error) {
	return r.get(ctx, "http://"+r.MetricsAddr+"/metrics")
}
