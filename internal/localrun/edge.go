package localrun

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	vault "github.com/hashicorp/vault/api"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/control-plane/xds"
	"github.com/bulkhead-mesh/bulkhead/envoy"
	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
	"github.com/bulkhead-mesh/bulkhead/internal/workload"
	bhvault "github.com/bulkhead-mesh/bulkhead/vault"
)

// The edge of DESIGN.md §2 as processes: the rate-limit service
// (envoyproxy/ratelimit, always: its rules come from the control plane and
// show what the gateways would enforce), and the edge router and the two
// domain gateways as Envoy processes when an `envoy` binary is on PATH.

// edgeProxy is one Envoy of the edge: its node identity, the Service it is
// an endpoint of ("" for the router, which clients reach directly) and the
// port of its Gateway listener (policies/mesh/edge.yaml).
type edgeProxy struct {
	role    workload.Role
	name    string
	service string
	port    int
}

var edgeProxies = []edgeProxy{
	{role: workload.RoleGateway, name: "identity", service: "gateway-identity", port: 10081},
	{role: workload.RoleGateway, name: "ai", service: "gateway-ai", port: 10082},
	{role: workload.RoleRouter, name: "edge", port: 10080},
}

// account is the identity an edge proxy proves to the control plane
// (control-plane/server.ServiceAccount).
func (p edgeProxy) account() string { return string(p.role) + "-" + p.name }

// startRateLimit runs the rate-limit service: its own Redis user (keys
// "ratelimit:*"), an mTLS xDS connection proving the identity ratelimit,
// and its gRPC port as the endpoint of Service ratelimit, which the
// gateways' rate-limit filter calls.
func startRateLimit(ctx context.Context, log *slog.Logger, env *envFile, state, endpointsDir string, cp *controlplane.ControlPlane, v *vault.Client, rd *components.Redis, user provision.RedisUser) (component, error) {
	proxy := "ratelimit/default/" + bhvault.RateLimit
	xdsAddr := cp.XDSAddr()
	// The domains the control plane serves it (it publishes once the node
	// has connected).
	published := func() (int, bool) {
		res, _ := cp.Server.Published(workload.ProxyID{Role: workload.RoleRateLimit, Namespace: "default", Name: bhvault.RateLimit})
		if res == nil {
			return 0, false
		}
		return len(res[resourcev3.RateLimitConfigType]), true
	}
	certs := pki.CertFilesIn(filepath.Join(state, "certs", bhvault.RateLimit))
	stopRenew, err := keepCertificate(ctx, log, v, bhvault.RateLimit, certs)
	if err != nil {
		return component{}, err
	}
	rl, err := components.StartRateLimit(ctx, components.RateLimitOptions{
		Dir:        filepath.Join(state, "ratelimit"),
		XDSAddress: xdsAddr,
		Proxy:      proxy,
		RedisAddr:  rd.Addr, RedisUser: user.User, RedisPassword: user.Password, KeyPrefix: bhvault.RateLimit + ":",
		XDSTLS: &components.TLSFiles{Certificate: certs.Certificate, PrivateKey: certs.PrivateKey, CA: certs.CA},
	})
	if err != nil {
		stopRenew()
		return component{}, err
	}
	host, port, _ := net.SplitHostPort(rl.GRPCAddr)
	p, _ := strconv.Atoi(port)
	endpoint, err := provision.WriteEndpoint(endpointsDir, bhvault.RateLimit, "ratelimit-1", &net.TCPAddr{IP: net.ParseIP(host), Port: p}, nil)
	if err != nil {
		stopRenew()
		rl.Close()
		return component{}, err
	}
	// Ready when it has loaded every domain the control plane serves it.
	domains := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		cfg, err := rl.Config(ctx)
		want, ok := published()
		if err == nil && ok && countDomains(cfg) == want {
			domains = want
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stopRenew()
			os.Remove(endpoint)
			rl.Close()
			return component{}, fmt.Errorf("the rate-limit service received no rules from the control plane within 30 s; its log:\n%s", rl.LogTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	env.add("BULKHEAD_RATELIMIT_ADDR", rl.GRPCAddr)
	return component{
		where: fmt.Sprintf("%s (rules for %d gateway listeners from the control plane; rules: http://%s/rlconfig, metrics http://%s/metrics)", rl.GRPCAddr, domains, rl.DebugAddr, rl.MetricsAddr),
		close: func() error {
			os.Remove(endpoint)
			stopRenew()
			return rl.Close()
		},
	}, nil
}

// countDomains counts the domains of a /rlconfig page (each line starts
// with "DOMAIN.rule_", the rule being every descriptor's first entry).
func countDomains(cfg string) int {
	seen := map[string]bool{}
	for _, line := range strings.Split(cfg, "\n") {
		if d, _, ok := strings.Cut(line, "."+xds.RuleKey+"_"); ok {
			seen[d] = true
		}
	}
	return len(seen)
}

// envoyBinary is the envoy on PATH, or "".
func envoyBinary() string {
	p, err := exec.LookPath("envoy")
	if err != nil {
		return ""
	}
	return p
}

// startEnvoy runs one edge proxy: its workload certificate (renewed; Envoy
// reloads it), a bootstrap whose xDS connection is mTLS, the process, and,
// for a gateway, its EndpointSlice so that the router can reach it.
func startEnvoy(ctx context.Context, log *slog.Logger, bin string, p edgeProxy, state, endpointsDir, logDir, xdsAddr string, v *vault.Client, baseID int) (component, error) {
	certs := pki.CertFilesIn(filepath.Join(state, "certs", p.account()))
	stopRenew, err := keepCertificate(ctx, log, v, p.account(), certs)
	if err != nil {
		return component{}, err
	}
	adminPort, err := components.FreePort()
	if err != nil {
		stopRenew()
		return component{}, err
	}
	boot, err := envoy.Render(envoy.Bootstrap{
		Role: string(p.role), Name: p.name, Namespace: "default", NodeID: p.account() + "-1",
		XDSAddress: xdsAddr, AdminPort: adminPort,
		XDSTLS: &envoy.TLSFiles{Dir: certs.Dir, Certificate: certs.Certificate, PrivateKey: certs.PrivateKey, CA: certs.CA},
	})
	if err != nil {
		stopRenew()
		return component{}, err
	}
	bootPath := filepath.Join(state, "envoy", p.account()+".yaml")
	if err := os.MkdirAll(filepath.Dir(bootPath), 0o700); err != nil {
		stopRenew()
		return component{}, err
	}
	if err := os.WriteFile(bootPath, boot, 0o600); err != nil {
		stopRenew()
		return component{}, err
	}
	logPath := filepath.Join(logDir, p.account()+".log")
	proc, err := components.StartProcess(p.account(), bin, []string{"-c", bootPath, "--base-id", strconv.Itoa(baseID), "--log-format", "%Y-%m-%dT%T.%eZ %l %n %v"}, nil, logPath)
	if err != nil {
		stopRenew()
		return component{}, err
	}
	listener := fmt.Sprintf("127.0.0.1:%d", p.port)
	// Ready when the listener the control plane programs accepts.
	err = proc.WaitReady(ctx, time.Minute, func(ctx context.Context) error {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", listener)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		stopRenew()
		proc.Stop(5 * time.Second)
		return component{}, err
	}
	var endpoint string
	if p.service != "" {
		endpoint, err = provision.WriteEndpoint(endpointsDir, p.service, p.account()+"-1", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, map[string]int{"http": p.port})
		if err != nil {
			stopRenew()
			proc.Stop(5 * time.Second)
			return component{}, err
		}
	}
	return component{
		where: fmt.Sprintf("http://%s (admin and Prometheus stats http://127.0.0.1:%d/stats/prometheus, log %s)", listener, adminPort, relLog(logPath)),
		close: func() error {
			if endpoint != "" {
				os.Remove(endpoint)
			}
			stopRenew()
			return proc.Stop(15 * time.Second)
		},
	}, nil
}

// startEdge starts the rate-limit service, then the gateways and the
// router when Envoy is installed, and returns the ingress address ("" when
// there is no Envoy).
func startEdge(ctx context.Context, opts Options, start func(string, func() (component, error)) error, env *envFile, state, endpointsDir, logDir string, cp *controlplane.ControlPlane, vlt *components.Vault, rd *components.Redis, prov *provision.Result) (string, error) {
	xdsAddr := cp.XDSAddr()
	v, err := pki.Client(vlt.Addr, vlt.RootToken)
	if err != nil {
		return "", err
	}
	logFile, err := os.OpenFile(filepath.Join(logDir, "edge-certificates.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	log := slog.New(slog.NewJSONHandler(logFile, nil))
	if err := start("ratelimit", func() (component, error) {
		c, err := startRateLimit(ctx, log, env, state, endpointsDir, cp, v, rd, prov.RateLimitRedis)
		if err != nil {
			logFile.Close()
			return c, err
		}
		// The rate-limit service is the first of the edge to start, so the
		// last to stop: the renewals' log closes with it.
		stop := c.close
		c.close = func() error { err := stop(); logFile.Close(); return err }
		return c, nil
	}); err != nil {
		return "", err
	}
	bin := opts.EnvoyBinary
	if bin == "" {
		bin = envoyBinary()
	}
	if bin == "" {
		fmt.Fprintf(opts.Out, "  %-20s skipped: no envoy binary on PATH; the router and gateways (ext_authz, rate limits, IP filtering) are not started, the api service is reachable directly\n", "edge")
		return "", nil
	}
	for i, p := range edgeProxies {
		if err := start(p.account(), func() (component, error) {
			return startEnvoy(ctx, log, bin, p, state, endpointsDir, logDir, xdsAddr, v, 100+i)
		}); err != nil {
			return "", err
		}
	}
	router := edgeProxies[len(edgeProxies)-1]
	return fmt.Sprintf("127.0.0.1:%d", router.port), nil
}
