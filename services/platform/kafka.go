package platform

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Kafka connects to the platform's Kafka as the service's own Kafka user
// (kafka_seeds, kafka_user and kafka_password of its Vault secret; the
// user's ACLs are what services/events declares for it) and closes the
// client at stop. opts add the producer's or consumer's settings.
func (rt *Runtime) Kafka(opts ...kgo.Opt) (*kgo.Client, error) {
	base, err := KafkaOpts(rt.Secrets)
	if err != nil {
		return nil, err
	}
	base = append(base, kgo.WithLogger(kafkaLog{rt.Log.With("component", "kafka")}))
	c, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	rt.OnStop(func() error { c.Close(); return nil })
	return c, nil
}

// KafkaProducer is a Kafka client of the service's user that produces
// to topic unless a record names another, each record acknowledged by
// every in-sync replica (and, franz-go's default, idempotent). opts add to
// or override these.
func (rt *Runtime) KafkaProducer(topic string, opts ...kgo.Opt) (*kgo.Client, error) {
	return rt.Kafka(append([]kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks())}, opts...)...)
}

// KafkaOpts are the connection options a secret describes.
func KafkaOpts(s Secrets) ([]kgo.Opt, error) {
	seeds, err := s.Get("kafka_seeds")
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(seeds, ",")...)}
	if user := s["kafka_user"]; user != "" {
		pass, err := s.Get("kafka_password")
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
	}
	return opts, nil
}

// kafkaLog writes the Kafka client's warnings and errors to the service's
// log (its info and debug lines are per request and per connection).
type kafkaLog struct{ log *slog.Logger }

func (kafkaLog) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kafkaLog) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	l.log.Log(context.Background(), lv, msg, keyvals...)
}
