package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/bulkhead-mesh/bulkhead/services/events"
)

// KafkaAdmin is how provisioning reaches Kafka: the seed brokers (as the
// services reach them too) and a superuser ("" for a broker without
// authentication, whose services then get no user).
type KafkaAdmin struct {
	Seeds          []string
	User, Password string
}

// kafkaSetup creates the topics services/events declares (partitions,
// retention), then gives each service that uses Kafka its own SCRAM user
// whose ACLs allow exactly its declared topics and groups.
type kafkaSetup struct {
	o   KafkaAdmin
	cl  *kgo.Client
	adm *kadm.Client
}

func (o KafkaAdmin) client() (*kgo.Client, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(o.Seeds...)}
	if o.User != "" {
		opts = append(opts, kgo.SASL(scram.Auth{User: o.User, Pass: o.Password}.AsSha256Mechanism()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return cl, nil
}

// PingKafka says whether the broker answers the superuser.
func PingKafka(ctx context.Context, o KafkaAdmin) error {
	cl, err := o.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka %s: %w", strings.Join(o.Seeds, ","), err)
	}
	return nil
}

func openKafka(ctx context.Context, o KafkaAdmin) (*kafkaSetup, error) {
	cl, err := o.client()
	if err != nil {
		return nil, err
	}
	k := &kafkaSetup{o: o, cl: cl, adm: kadm.NewClient(cl)}
	for _, t := range events.Topics() {
		if err := ensureTopic(ctx, k.adm, t); err != nil {
			cl.Close()
			return nil, err
		}
	}
	return k, nil
}

func (k *kafkaSetup) close() { k.cl.Close() }

// service returns the secret values of service (seeds, user, password;
// nothing for a service that does not use Kafka); the password of its
// current secret is kept.
func (k *kafkaSetup) service(ctx context.Context, service string, current map[string]any) (map[string]string, error) {
	if !slices.Contains(events.Users(), service) {
		return nil, nil
	}
	secret := map[string]string{"kafka_seeds": strings.Join(k.o.Seeds, ",")}
	if k.o.User == "" {
		return secret, nil
	}
	pass, _ := current["kafka_password"].(string)
	if pass == "" {
		pass = randomHex(24)
	}
	altered, err := k.adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: service, Mechanism: kadm.ScramSha256, Iterations: 4096, Password: pass}})
	if err == nil {
		err = altered.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("kafka user %s: %w", service, err)
	}
	if err := serviceACLs(ctx, k.adm, service); err != nil {
		return nil, err
	}
	secret["kafka_user"], secret["kafka_password"] = service, pass
	return secret, nil
}

func ensureTopic(ctx context.Context, adm *kadm.Client, t events.Topic) error {
	retention := strconv.FormatInt(t.Retention.Milliseconds(), 10)
	res, err := adm.CreateTopic(ctx, t.Partitions, -1, map[string]*string{"retention.ms": &retention}, t.Name)
	if err == nil {
		err = res.Err
	}
	if errors.Is(err, kerr.TopicAlreadyExists) {
		// Kept as it is but for its retention, which follows the declaration.
		// Partitions are only ever added by an operator: adding some would
		// move keys (accounts) to other partitions and break their order.
		ar, aerr := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &retention}}, t.Name)
		if aerr == nil {
			_, aerr = ar.On(t.Name, nil)
		}
		err = aerr
	}
	if err != nil {
		return fmt.Errorf("kafka topic %s: %w", t.Name, err)
	}
	return nil
}

// serviceACLs allows service what services/events declares for it:
// writing (idempotently) to the topics it produces, reading the topics
// it consumes in its own group.
func serviceACLs(ctx context.Context, adm *kadm.Client, service string) error {
	principal := "User:" + service
	var produce, consume, groups []string
	for _, t := range events.Topics() {
		if t.Produces(service) {
			produce = append(produce, t.Name)
		}
		if g := t.Group(service); g != "" {
			consume = append(consume, t.Name)
			groups = append(groups, g)
		}
	}
	var builders []*kadm.ACLBuilder
	if len(produce) > 0 {
		builders = append(builders,
			kadm.NewACLs().Allow(principal).Topics(produce...).Operations(kadm.OpWrite, kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral),
			kadm.NewACLs().Allow(principal).Clusters().Operations(kadm.OpIdempotentWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	}
	if len(consume) > 0 {
		builders = append(builders,
			kadm.NewACLs().Allow(principal).Topics(consume...).Groups(groups...).Operations(kadm.OpRead, kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral))
	}
	for _, b := range builders {
		res, err := adm.CreateACLs(ctx, b)
		if err != nil {
			return fmt.Errorf("kafka ACLs of %s: %w", service, err)
		}
		for _, r := range res {
			if r.Err != nil {
				return fmt.Errorf("kafka ACLs of %s: %w", service, r.Err)
			}
		}
	}
	return nil
}
