package components

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// KafkaOptions configures StartKafka.
type KafkaOptions struct {
	// Topics created at start (auto-creation is also allowed).
	Topics []string
	// Partitions of each topic; 0 means 1.
	Partitions int32
}

// Kafka is an in-process Kafka broker (franz-go's kfake): it speaks the
// Kafka protocol on a loopback port, so real clients (franz-go's kgo) talk to
// it exactly as to a broker.
type Kafka struct {
	// Seeds are the bootstrap broker addresses.
	Seeds []string

	cluster *kfake.Cluster
}

// StartKafka starts a one-broker cluster on a free loopback port.
func StartKafka(opts KafkaOptions) (*Kafka, error) {
	partitions := opts.Partitions
	if partitions == 0 {
		partitions = 1
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(int(partitions)),
		kfake.AllowAutoTopicCreation(),
	}
	if len(opts.Topics) > 0 {
		kopts = append(kopts, kfake.SeedTopics(partitions, opts.Topics...))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return &Kafka{Seeds: c.ListenAddrs(), cluster: c}, nil
}

// Close stops the broker.
func (k *Kafka) Close() error {
	k.cluster.Close()
	return nil
}
