package components

import "github.com/bulkhead-mesh/bulkhead/internal/kafkabroker"

// KafkaOptions configures StartKafka.
type KafkaOptions = kafkabroker.Options

// Kafka is the in-process Kafka-protocol broker (internal/kafkabroker).
type Kafka = kafkabroker.Broker

// StartKafka starts a one-broker cluster on a free loopback port.
func StartKafka(opts KafkaOptions) (*Kafka, error) { return kafkabroker.Start(opts) }
