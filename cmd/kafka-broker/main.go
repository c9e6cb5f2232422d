// Command kafka-broker is a one-node broker that speaks the Kafka protocol
// (franz-go's kfake, the broker the tests run in process), for the local
// cluster, where Apache Kafka has no image that can be built: no JVM
// distribution of Kafka is on the reachable registries. kind runs the real
// apache/kafka image instead (deploy/kind/overlays/kind).
//
// Like the platform's Kafka everywhere, it authenticates every client
// (SASL SCRAM-SHA-256) and authorizes it with ACLs; its one superuser's
// password is read from a file (the cluster's Secret kafka-admin), and the
// topics, the services' users and their ACLs are what provisioning creates.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/bulkhead-mesh/bulkhead/internal/kafkabroker"
)

func main() {
	fs := flag.NewFlagSet("kafka-broker", flag.ContinueOnError)
	listen := fs.String("listen", "", "HOST:PORT the broker listens on and advertises to clients (required; in a pod its IP, e.g. $(POD_IP):9092)")
	dataDir := fs.String("data-dir", "", "keep topics, offsets, users and ACLs here across restarts (empty: in memory)")
	partitions := fs.Int("partitions", 3, "default partitions of a topic")
	adminUser := fs.String("admin-user", "admin", "the superuser's name")
	adminPasswordFile := fs.String("admin-password-file", "", "file holding the superuser's password (required unless --no-auth)")
	noAuth := fs.Bool("no-auth", false, "serve every client unauthenticated, with no ACLs (never in a shared cluster)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if err := run(*listen, *dataDir, *partitions, *adminUser, *adminPasswordFile, *noAuth); err != nil {
		fmt.Fprintf(os.Stderr, "kafka-broker: %v\n", err)
		os.Exit(1)
	}
}

func run(listen, dataDir string, partitions int, adminUser, adminPasswordFile string, noAuth bool) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		return fmt.Errorf("--listen %q: want the IP clients reach this broker at (it is also what the broker advertises)", listen)
	}
	if partitions < 1 {
		return fmt.Errorf("--partitions %d: want at least 1", partitions)
	}
	opts := kafkabroker.Options{Listen: listen, DataDir: dataDir, Partitions: int32(partitions), Open: noAuth}
	switch {
	case noAuth && adminPasswordFile != "":
		return fmt.Errorf("--no-auth and --admin-password-file: choose one")
	case !noAuth && adminPasswordFile == "":
		return fmt.Errorf("--admin-password-file is required: the broker authenticates every client (or --no-auth, never in a shared cluster)")
	case !noAuth:
		b, err := os.ReadFile(adminPasswordFile)
		if err != nil {
			return fmt.Errorf("--admin-password-file: %w", err)
		}
		if opts.AdminPassword = strings.TrimSpace(string(b)); opts.AdminPassword == "" {
			return fmt.Errorf("--admin-password-file %s: empty", adminPasswordFile)
		}
		if adminUser == "" {
			return fmt.Errorf("--admin-user: empty")
		}
		opts.AdminUser = adminUser
	}
	k, err := kafkabroker.Start(opts)
	if err != nil {
		return err
	}
	defer k.Close()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	log.Info("serving the Kafka protocol", "addresses", k.Seeds, "data_dir", dataDir, "authentication", !noAuth, "superuser", k.AdminUser)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	log.Info("stopping")
	return nil
}
