package platform

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
)

// Main is a service's whole main: flags (the shared ones below plus the
// service's own, registered by flags), signals (SIGINT/SIGTERM stop it
// gracefully), exit status.
func Main(name string, flags func(*flag.FlagSet), setup Setup) {
	os.Exit(run(name, os.Args[1:], flags, setup))
}

func run(name string, args []string, flags func(*flag.FlagSet), setup Setup) int {
	cfg, err := ParseFlags(name, args, flags)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	svc, err := Start(ctx, cfg, setup)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		return 1
	}
	<-ctx.Done()
	if err := svc.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: stop: %v\n", name, err)
		return 1
	}
	return 0
}

// ParseFlags reads the shared flags, and the service's own through flags.
func ParseFlags(name string, args []string, flags func(*flag.FlagSet)) (Config, error) {
	cfg := Config{Name: name}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&cfg.GRPCAddress, "grpc-address", "", "gRPC listen address: the address of this process's EndpointSlice (required)")
	fs.StringVar(&cfg.MetricsAddress, "metrics-address", "", "serve Prometheus /metrics here (empty: none)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "also serve Go's profiles (net/http/pprof, /debug/pprof/) on the metrics address, for profiling under load")
	fs.StringVar(&cfg.HealthAddress, "health-address", "", "serve only the gRPC health service here, in plaintext, for a kubelet's grpc probes (empty: none; the mesh port is mTLS only)")
	fs.StringVar(&cfg.XDSAddress, "xds-address", os.Getenv("BULKHEAD_XDS_ADDR"), "the control plane's ADS endpoint (default $BULKHEAD_XDS_ADDR)")
	fs.StringVar(&cfg.Service, "service", "", "the mesh Service this process is an endpoint of (default NAME; e.g. auth-cache)")
	fs.BoolVar(&cfg.XDSTLS, "xds-tls", false, "connect to the control plane in mTLS with the workload certificate (production mode)")
	fs.StringVar(&cfg.Namespace, "namespace", "default", "the Service's namespace")
	fs.StringVar(&cfg.Instance, "instance", "", "unique name of this process, its xDS node id (default NAME-HOST-PID)")
	fs.StringVar(&cfg.Vault.Address, "vault-address", os.Getenv("VAULT_ADDR"), "Vault address (default $VAULT_ADDR)")
	fs.StringVar(&cfg.Vault.RoleID, "vault-role-id", "", "the service's AppRole role id (required)")
	fs.StringVar(&cfg.Vault.SecretIDFile, "vault-secret-id-file", "", "file holding the AppRole secret id (required)")
	fs.StringVar(&cfg.Vault.KubernetesRole, "vault-kubernetes-role", "", "log in to Vault with the pod's service account for this role (in a cluster) instead of AppRole")
	fs.StringVar(&cfg.Vault.KubernetesTokenFile, "vault-kubernetes-token-file", "", "the service account token (default "+pki.DefaultKubernetesTokenFile+")")
	fs.StringVar(&cfg.SecretsPath, "secrets-path", "", "Vault KV v2 path of the service's secret (default bulkhead/NAME)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", 0, "longest graceful stop before calls in flight are cut (default 10s)")
	fs.StringVar(&cfg.CertDir, "cert-dir", "", "where the workload certificate is kept (default: a private temporary directory)")
	fs.DurationVar(&cfg.CertTTL, "cert-ttl", 0, "lifetime of the workload certificate, renewed at two thirds (default 1h, at most the PKI role's)")
	if flags != nil {
		flags(fs)
	}
	if err := flagsFromEnv(fs, os.LookupEnv); err != nil {
		return cfg, err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(*level)); err != nil {
		return cfg, fmt.Errorf("--log-level %q: want debug, info, warn or error", *level)
	}
	cfg.LogLevel = l
	return cfg, cfg.defaults()
}

// EnvPrefix names the environment variables that set a service's flags:
// --grpc-address is BULKHEAD_GRPC_ADDRESS. A flag on the command line wins
// over its variable. (A Deployment sets what every service shares, such as
// $(POD_IP):9000, once for all of them.)
const EnvPrefix = "BULKHEAD_"

// EnvName is the environment variable of a flag.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func flagsFromEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(f.Name)
		v, ok := lookup(name)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("$%s (--%s) %q: %w", name, f.Name, v, err))
		}
	})
	return errors.Join(errs...)
}
