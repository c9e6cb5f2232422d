package localrun

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/provision"
)

// process is one service process of the platform.
type process struct {
	// name is the service (its binary is bin/bulkhead-NAME, its Vault role
	// bulkhead-NAME); service the mesh Service it is an endpoint of;
	// instance its unique name (log file, EndpointSlice, xDS node id).
	name, service, instance string
	args                    []string
	// ports are the process's other named ports (api's public HTTP).
	ports map[string]int
}

// processes are the platform's service processes in start order: each
// after what it calls at start.
func processes(o Options, state string) []process {
	ps := []process{
		{name: "users", service: "users", instance: "users-1"},
		{name: "models", service: "models", instance: "models-1", args: modelsArgs(o, state)},
		{name: "inference", service: "inference", instance: "inference-1", args: []string{"--token-interval", o.TokenInterval.String()}},
		{name: "inference", service: "inference", instance: "inference-2", args: []string{"--token-interval", o.TokenInterval.String()}},
		{name: "inference", service: "inference-fallback", instance: "inference-fallback-1", args: []string{"--token-interval", o.TokenInterval.String()}},
		{name: "auth", service: "auth", instance: "auth-1"},
		{name: "auth", service: "auth-cache", instance: "auth-cache-1", args: []string{"--cache-only"}},
		{name: "chat", service: "chat", instance: "chat-1", args: []string{"--outbox-dir", filepath.Join(state, "outbox", "chat-1")}},
		// The fine-tuning API and a worker.
		{name: "training", service: "training", instance: "training-1", args: []string{"--worker"}},
		{name: "webhooks", service: "webhooks", instance: "webhooks-1", args: webhooksArgs(o)},
		{name: "api", service: "api", instance: "api-1", args: []string{"--http-address", o.APIAddress}, ports: map[string]int{"http": portOf(o.APIAddress)}},
	}
	if o.Pprof {
		for i := range ps {
			ps[i].args = append(ps[i].args, "--pprof")
		}
	}
	return ps
}

func webhooksArgs(o Options) []string {
	var args []string
	for _, n := range o.WebhooksAllowNetworks {
		args = append(args, "--allow-network", n)
	}
	return args
}

// serviceBinary finds bin/bulkhead-NAME.
func serviceBinary(binDir, name string) (string, error) {
	bin := filepath.Join(binDir, "bulkhead-"+name)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s not found: build the services first (`make run` does it, or `make build`)", bin)
	}
	return bin, nil
}

// startProcess starts one service process: a free port, its EndpointSlice
// in the endpoints directory, the process, then waits until its gRPC
// health says SERVING (the control plane has programmed its listener and
// its setup is done).
func startProcess(ctx context.Context, p process, binDir, endpointsDir, logDir, xdsAddr, vaultAddr string, cred provision.Credentials, operator pki.CertFiles, stopping func() bool, out io.Writer) (component, error) {
	bin, err := serviceBinary(binDir, p.name)
	if err != nil {
		return component{}, err
	}
	port, err := components.FreePort()
	if err != nil {
		return component{}, err
	}
	metricsPort, err := components.FreePort()
	if err != nil {
		return component{}, err
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	endpoint, err := provision.WriteEndpoint(endpointsDir, p.service, p.instance, addr, p.ports)
	if err != nil {
		return component{}, err
	}
	metrics := "127.0.0.1:" + strconv.Itoa(metricsPort)
	args := append([]string{
		"--grpc-address", addr.String(),
		"--metrics-address", metrics,
		"--xds-address", xdsAddr,
		"--vault-address", vaultAddr,
		"--vault-role-id", cred.RoleID,
		"--vault-secret-id-file", cred.SecretIDFile,
		"--instance", p.instance,
		"--service", p.service,
		"--cert-dir", filepath.Join(filepath.Dir(logDir), "certs", p.instance),
		"--xds-tls",
	}, p.args...)
	logPath := filepath.Join(logDir, p.instance+".log")
	proc, err := components.StartProcess(p.instance, bin, args, serviceEnv(), logPath)
	if err != nil {
		os.Remove(endpoint)
		return component{}, err
	}
	tlsConf, err := provision.OperatorTLS(operator)
	if err != nil {
		proc.Stop(5 * time.Second)
		os.Remove(endpoint)
		return component{}, err
	}
	err = proc.WaitReady(ctx, time.Minute, func(ctx context.Context) error { return serving(ctx, addr.String(), tlsConf) })
	if err != nil {
		proc.Stop(5 * time.Second)
		os.Remove(endpoint)
		return component{}, err
	}
	// A process that dies on its own is reported, and its endpoint goes.
	go func() {
		<-proc.Done()
		if !stopping() {
			os.Remove(endpoint)
			fmt.Fprintf(out, "  %-9s exited unexpectedly; its endpoint is removed. Log: %s\n%s\n", p.instance, logPath, proc.LogTail())
		}
	}()
	return component{
		where: fmt.Sprintf("%s (metrics http://%s/metrics, log %s)", addr, metrics, relLog(logPath)),
		close: func() error {
			os.Remove(endpoint)
			return proc.Stop(15 * time.Second)
		},
	}, nil
}

func relLog(path string) string {
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
	}
	return path
}

// serviceEnv is the environment of a service process: this one's, without
// Vault credentials (a service logs in with its own AppRole).
func serviceEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VAULT_TOKEN=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// serving asks a process's gRPC health, as the operator over mTLS (the
// platform's Services are STRICT).
func serving(ctx context.Context, addr string, tlsConf *tls.Config) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
	if err != nil {
		return err
	}
	defer cc.Close()
	r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return errors.New(r.GetStatus().String())
	}
	return nil
}

// devKey makes sure the development account and its admin key exist,
// reusing those of an earlier run (the databases persist under the state
// directory), and writes the key to STATE/dev-api-key (mode 0600).
func devKey(ctx context.Context, state, xdsAddr string, operator pki.CertFiles) (string, error) {
	node := fmt.Sprintf("bulkhead-up-%d", os.Getpid())
	op := provision.Operator(xdsAddr, node, operator, true)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	keyPath, acctPath := filepath.Join(state, "dev-api-key"), filepath.Join(state, "dev-account")
	read := func(p string) string { b, _ := os.ReadFile(p); return strings.TrimSpace(string(b)) }
	oldKey := read(keyPath)
	account, key, err := provision.DevKey(ctx, op, read(acctPath), oldKey, "dev (bulkhead up)")
	if err != nil {
		return "", err
	}
	if key == oldKey {
		return keyPath, nil
	}
	if err := os.WriteFile(acctPath, []byte(account+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(keyPath, []byte(key+"\n"), 0o600); err != nil {
		return "", err
	}
	return keyPath, nil
}

// portOf is the port of host:port (0 when there is none).
func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
