package stack

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
)

// KafkaAs is a Kafka client with service's own credentials (its Vault
// secret), so that a test acts as that service would, within its ACLs. It
// closes with the test.
func (s *Stack) KafkaAs(service string, opts ...kgo.Opt) *kgo.Client {
	s.t.Helper()
	v, err := pki.Client(s.Vault.Addr, s.Vault.RootToken)
	if err != nil {
		s.t.Fatal(err)
	}
	kv, err := v.KVv2("secret").Get(s.t.Context(), "bulkhead/"+service)
	if err != nil {
		s.t.Fatal(err)
	}
	secret := platform.Secrets{}
	for k, val := range kv.Data {
		if str, ok := val.(string); ok {
			secret[k] = str
		}
	}
	base, err := platform.KafkaOpts(secret)
	if err != nil {
		s.t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(cl.Close)
	return cl
}

// KafkaAdmin is an administrative client of the test's broker (its
// superuser), closed with the test.
func (s *Stack) KafkaAdmin() *kadm.Client {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Kafka.Seeds...),
		kgo.SASL(scram.Auth{User: s.Kafka.AdminUser, Pass: s.Kafka.AdminPassword}.AsSha256Mechanism()))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// WaitConsumed waits until group has committed every record of its
// topics: what was produced so far has been consumed.
func (s *Stack) WaitConsumed(group string, within time.Duration) {
	s.t.Helper()
	adm := s.KafkaAdmin()
	testenv.Eventually(s.t, within, "group "+group+" consumed everything", func() error {
		lags, err := adm.Lag(s.t.Context(), group)
		if err != nil {
			return err
		}
		l, ok := lags[group]
		if !ok || l.Error() != nil {
			return fmt.Errorf("lag of %s: %v", group, l.Error())
		}
		if total := l.Lag.Total(); total != 0 || len(l.Lag) == 0 {
			return fmt.Errorf("%d records not consumed yet", total)
		}
		return nil
	})
}
