// Command kafka-broker is a one-node broker that speaks the Kafka protocol
// (franz-go's kfake, the broker the tests run in process), for the local
// cluster, where Apache Kafka has no image that can be built: no JVM
// distribution of Kafka is on the reachable registries. kind runs the real
// apache/kafka image instead (deploy/kind/overlays/kind).
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	fs := flag.NewFlagSet("kafka-broker", flag.ContinueOnError)
	listen := fs.String("listen", "", "HOST:PORT the broker listens on and advertises to clients (required; in a pod its IP, e.g. $(POD_IP):9092)")
	dataDir := fs.String("data-dir", "", "keep topics and offsets here across restarts (empty: in memory)")
	partitions := fs.Int("partitions", 3, "partitions of an auto-created topic")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if err := run(*listen, *dataDir, *partitions); err != nil {
		fmt.Fprintf(os.Stderr, "kafka-broker: %v\n", err)
		os.Exit(1)
	}
}

func run(listen, dataDir string, partitions int) error {
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
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, listen) }),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(partitions),
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	log.Info("serving the Kafka protocol", "addresses", c.ListenAddrs(), "data_dir", dataDir)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	log.Info("stopping")
	return nil
}
