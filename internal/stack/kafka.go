package stack

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulkhead-mesh/bulkhead/internal/pki"
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
