// Package kafkabroker is the platform's Kafka-protocol broker where no
// Apache Kafka runs: franz-go's kfake, one node, with SASL SCRAM-SHA-256
// and ACLs. The tests and `bulkhead up` run it in process
// (internal/components), the local cluster as its own binary
// (cmd/kafka-broker). It depends on nothing but kfake, so that binary
// stays small.
package kafkabroker

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Options configures Start.
type Options struct {
	// Topics created at start (provisioning creates the platform's).
	Topics []string
	// Partitions of each topic; 0 means 1.
	Partitions int32
	// DataDir keeps topics, offsets, users and ACLs across Stop and
	// Start (empty: a private temporary directory).
	DataDir string
	// Open turns authentication and ACLs off (a bare broker).
	Open bool
	// Listen is the HOST:PORT the broker listens on and advertises
	// (empty: a free loopback port).
	Listen string
	// AdminUser and AdminPassword are the superuser's credentials
	// (empty: "admin" and a random password).
	AdminUser, AdminPassword string
}

// Broker is an in-process Kafka broker (franz-go's kfake): it speaks the
// Kafka protocol on a loopback port, so real clients (franz-go's kgo) talk to
// it exactly as to a broker. It authenticates clients with SASL
// SCRAM-SHA-256 and authorizes them with ACLs; Admin is its superuser,
// which provisioning uses to create each service's user and ACLs.
type Broker struct {
	// Seeds are the bootstrap broker addresses.
	Seeds []string
	// AdminUser and AdminPassword are the superuser's ("" when Open).
	AdminUser, AdminPassword string

	opts    Options
	addr    string
	mu      sync.Mutex
	cluster *kfake.Cluster
}

// Start starts a one-broker cluster (on a free loopback port unless
// opts.Listen says otherwise).
func Start(opts Options) (*Broker, error) {
	if opts.Partitions == 0 {
		opts.Partitions = 1
	}
	k := &Broker{opts: opts}
	if !opts.Open {
		k.AdminUser, k.AdminPassword = opts.AdminUser, opts.AdminPassword
		if k.AdminUser == "" {
			k.AdminUser = "admin"
		}
		if k.AdminPassword == "" {
			b := make([]byte, 18)
			_, _ = rand.Read(b)
			k.AdminPassword = hex.EncodeToString(b)
		}
	}
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if err := k.start(listen); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Broker) start(listen string) error {
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(int(k.opts.Partitions)),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, listen) }),
	}
	if k.opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(k.opts.DataDir))
	}
	if k.opts.Open {
		kopts = append(kopts, kfake.AllowAutoTopicCreation())
	} else {
		kopts = append(kopts, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", k.AdminUser, k.AdminPassword), kfake.EnableACLs())
	}
	if len(k.opts.Topics) > 0 {
		kopts = append(kopts, kfake.SeedTopics(k.opts.Partitions, k.opts.Topics...))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	k.mu.Lock()
	k.cluster = c
	k.Seeds = c.ListenAddrs()
	k.addr = k.Seeds[0]
	k.mu.Unlock()
	return nil
}

// Stop stops the broker as a crash would (clients see connections
// refused); Start brings it back on the same address with what it had.
// Both need a DataDir.
func (k *Broker) Stop() error {
	if k.opts.DataDir == "" {
		return fmt.Errorf("kafka: Stop needs Options.DataDir to come back")
	}
	return k.Close()
}

// Start restarts a stopped broker on its address.
func (k *Broker) Start() error {
	k.mu.Lock()
	running := k.cluster != nil
	k.mu.Unlock()
	if running {
		return nil
	}
	return k.start(k.addr)
}

// Cluster is the running broker, for tests that steer it (nil when
// stopped).
func (k *Broker) Cluster() *kfake.Cluster {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cluster
}

// Close stops the broker.
func (k *Broker) Close() error {
	k.mu.Lock()
	c := k.cluster
	k.cluster = nil
	k.mu.Unlock()
	if c != nil {
		c.Close()
	}
	return nil
}
