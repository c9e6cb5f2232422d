// Command control-plane is Bulkhead's xDS control plane: universal mode (a
// directory of Kubernetes-style YAML) or Kubernetes mode (an API server).
//
//	control-plane --config-dir DIR [--config-dir DIR ...] --xds-address HOST:PORT --admin-address HOST:PORT
//	control-plane --kubernetes [--kubeconfig F] [--namespace NS ...] --xds-address HOST:PORT --admin-address HOST:PORT
//	    [--tls-cert F --tls-key F --tls-ca F [--vault-address URL --vault-role-id ID --vault-secret-id-file F]]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	vault "github.com/hashicorp/vault/api"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client/config"

	controlplane "github.com/bulkhead-mesh/bulkhead/control-plane"
	"github.com/bulkhead-mesh/bulkhead/control-plane/kubestatus"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider"
	"github.com/bulkhead-mesh/bulkhead/control-plane/provider/kubernetes"
	"github.com/bulkhead-mesh/bulkhead/internal/pki"
)

func main() {
	fs := flag.NewFlagSet("control-plane", flag.ContinueOnError)
	var configDirs stringList
	fs.Var(&configDirs, "config-dir", "universal mode: directory of Gateway API, Service, EndpointSlice and policy YAML, watched for changes; repeat it to read several as one input (default policies)")
	kube := fs.Bool("kubernetes", false, "Kubernetes mode: watch the API server (kubeconfig from --kubeconfig, $KUBECONFIG, ~/.kube/config, or in-cluster) instead of directories")
	kubeconfig := fs.String("kubeconfig", "", "Kubernetes mode: the kubeconfig file (default: the usual places)")
	writeStatus := fs.Bool("write-status", true, "Kubernetes mode: write Accepted/Programmed back to the objects' status")
	leaseNS := fs.String("leader-election-namespace", os.Getenv("POD_NAMESPACE"), "Kubernetes mode: with several replicas, the namespace of the Lease that elects the one writing status (default $POD_NAMESPACE; empty: no election, this replica writes)")
	var namespaces stringList
	fs.Var(&namespaces, "namespace", "Kubernetes mode: a namespace to watch; repeat it for several (default: all)")
	xdsAddr := fs.String("xds-address", "127.0.0.1:18000", "address of the ADS server (state of the world and delta)")
	adminAddr := fs.String("admin-address", "127.0.0.1:18001", "address of the admin endpoint (/status, /nodes, /config_dump)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	pprofAddr := fs.String("pprof-address", "", "serve Go's profiles (/debug/pprof/) on this loopback address, for profiling; empty: off")
	var tlsFiles controlplane.TLSFiles
	fs.StringVar(&tlsFiles.Certificate, "tls-cert", "", "production mode: the control plane's certificate (PEM chain); with --tls-key and --tls-ca the xDS connection is mTLS and nodes prove their identity")
	fs.StringVar(&tlsFiles.PrivateKey, "tls-key", "", "production mode: its private key")
	fs.StringVar(&tlsFiles.CA, "tls-ca", "", "production mode: the trust bundle the nodes' certificates must chain to")
	var vc pki.VaultConfig
	fs.StringVar(&vc.Address, "vault-address", "", "production mode: Vault, whose PKI issues the certificates served over SDS to proven Envoy nodes (none are served without it)")
	fs.StringVar(&vc.RoleID, "vault-role-id", "", "the control plane's AppRole role id")
	fs.StringVar(&vc.SecretIDFile, "vault-secret-id-file", "", "file holding its AppRole secret id")
	fs.StringVar(&vc.KubernetesRole, "vault-kubernetes-role", "", "in a cluster: log in with Vault's Kubernetes auth as this role instead of AppRole")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "control-plane: unexpected argument %q\n", fs.Arg(0))
		os.Exit(2)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "control-plane: --log-level %q: want debug, info, warn or error\n", *logLevel)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, log); err != nil {
			log.Error("--pprof-address", "error", err)
			os.Exit(2)
		}
	}
	var prov provider.Provider
	var statusWriter *kubestatus.Writer
	var leader *controlplane.LeaderElection
	switch {
	case *kube && len(configDirs) > 0:
		log.Error("--kubernetes and --config-dir exclude each other: the input is the API server or directories")
		os.Exit(2)
	case *kube:
		cfg, err := kubeConfig(*kubeconfig)
		if err != nil {
			log.Error("--kubernetes: no API server to watch", "error", err)
			os.Exit(2)
		}
		prov = &kubernetes.Provider{Config: cfg, Namespaces: namespaces, Log: log}
		if *writeStatus {
			c, err := kubernetes.NewClient(cfg)
			if err == nil {
				statusWriter = &kubestatus.Writer{Client: c, Log: log}
			}
			if err != nil {
				log.Error("--write-status: no client for the API server", "error", err)
				os.Exit(2)
			}
			if *leaseNS != "" {
				leader = &controlplane.LeaderElection{Config: cfg, Namespace: *leaseNS}
			}
		}
	case len(namespaces) > 0 || *kubeconfig != "":
		log.Error("--namespace and --kubeconfig are for Kubernetes mode: add --kubernetes")
		os.Exit(2)
	default:
		if len(configDirs) == 0 {
			configDirs = stringList{"policies"}
		}
		for _, dir := range configDirs {
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				log.Error("--config-dir must be a directory", "config_dir", dir, "error", err)
				os.Exit(2)
			}
		}
	}

	var tlsOpt *controlplane.TLSFiles
	switch set := tlsFiles.Certificate != "" || tlsFiles.PrivateKey != "" || tlsFiles.CA != ""; {
	case set && (tlsFiles.Certificate == "" || tlsFiles.PrivateKey == "" || tlsFiles.CA == ""):
		log.Error("production mode needs all of --tls-cert, --tls-key and --tls-ca")
		os.Exit(2)
	case set:
		tlsOpt = &tlsFiles
	}
	var issuer pki.Issuer
	if vc.Address != "" {
		if tlsOpt == nil {
			log.Error("--vault-address serves certificates over SDS, which only proven nodes get: it needs production mode (--tls-cert, --tls-key, --tls-ca)")
			os.Exit(2)
		}
		if vc.KubernetesRole == "" && (vc.RoleID == "" || vc.SecretIDFile == "") {
			log.Error("--vault-address needs --vault-role-id and --vault-secret-id-file (or --vault-kubernetes-role)")
			os.Exit(2)
		}
		issuer = pki.VaultIssuer{Login: func(ctx context.Context) (*vault.Client, error) { return pki.Login(ctx, vc) }}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cp, err := controlplane.Start(ctx, controlplane.Options{
		ConfigDirs:   configDirs,
		Provider:     prov,
		StatusWriter: statusWriter,
		Leader:       leader,
		XDSAddress:   *xdsAddr,
		AdminAddress: *adminAddr,
		TLS:          tlsOpt,
		Issuer:       issuer,
		Log:          log,
	})
	if err != nil {
		log.Error("start", "error", err)
		os.Exit(1)
	}
	log.Info("serving", "xds", cp.XDSAddr(), "admin", cp.AdminAddr(), "config_dirs", []string(configDirs), "kubernetes", *kube, "namespaces", []string(namespaces))
	<-ctx.Done()
	log.Info("stopping")
	if err := cp.Stop(); err != nil {
		log.Error("stop", "error", err)
		os.Exit(1)
	}
}

// servePprof serves net/http/pprof on a loopback address only: profiles
// show the process's code paths and flags, not for the network.
func servePprof(addr string, log *slog.Logger) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q: profiles are served on a loopback address only (127.0.0.1, ::1 or localhost)", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server", "error", err)
		}
	}()
	log.Info("profiles", "pprof", "http://"+l.Addr().String()+"/debug/pprof/")
	return nil
}

// kubeConfig is the API server's client configuration: the file named,
// else $KUBECONFIG, ~/.kube/config or the pod's service account.
func kubeConfig(path string) (*rest.Config, error) {
	if path != "" {
		return clientcmd.BuildConfigFromFlags("", path)
	}
	return config.GetConfig()
}

// stringList is a repeatable flag (--config-dir, --namespace).
type stringList []string

func (d *stringList) String() string { return strings.Join(*d, ",") }

func (d *stringList) Set(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	*d = append(*d, v)
	return nil
}
