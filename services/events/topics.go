// Package events declares, in one place, the Kafka topics the services
// exchange events on: each topic's partitions and retention, which
// services produce to it and which consume it in which consumer group.
// Provisioning creates the topics and gives each service a Kafka user
// whose ACLs allow exactly what is declared here (internal/provision);
// the services name their topics and groups from here, never by literal.
package events

import (
	"slices"
	"time"
)

// Topic is one Kafka topic and who may use it.
type Topic struct {
	Name       string
	Partitions int32
	Retention  time.Duration
	// Producers are the services that write to it.
	Producers []string
	// Consumers read it, each service in its own consumer group.
	Consumers []Consumer
}

// Consumer is a service reading a topic in a consumer group.
type Consumer struct {
	Service, Group string
}

// Usage carries one UsageEvent per served request from chat to the
// ledger (users), keyed by account so that an account's events are
// consumed in the order chat produced them.
var Usage = Topic{
	Name:       "bulkhead.usage.v1",
	Partitions: 6,
	Retention:  7 * 24 * time.Hour,
	// training charges a fine-tuning job's trained tokens with the same
	// events (one per epoch).
	Producers: []string{"chat", "training"},
	Consumers: []Consumer{{Service: "users", Group: "users-ledger"}},
}

// FineTuningJobs queues fine-tuning jobs for the training workers: the
// record's key and value are the job's id (its terms are in DB Training).
// A worker commits a job's offset once the job has ended, so a job whose
// worker died is delivered again and resumed from its last checkpoint.
var FineTuningJobs = Topic{
	Name:       "bulkhead.fine-tuning.jobs.v1",
	Partitions: 3,
	Retention:  7 * 24 * time.Hour,
	Producers:  []string{"training"},
	Consumers:  []Consumer{{Service: "training", Group: "training-workers"}},
}

// Notifications carries what accounts may be told by webhook
// (eventsv1.Notification, keyed by account): a fine-tuning job that ended
// (training), a budget threshold crossed (users).
var Notifications = Topic{
	Name:       "bulkhead.notifications.v1",
	Partitions: 6,
	Retention:  7 * 24 * time.Hour,
	Producers:  []string{"training", "users"},
	Consumers:  []Consumer{{Service: "webhooks", Group: "webhooks-intake"}},
}

// WebhookDeadLetters parks the deliveries webhooks gave up on (the
// delivery as a JSON object, keyed by account), for operators to replay;
// accounts see theirs through the API.
var WebhookDeadLetters = Topic{
	Name:       "bulkhead.webhooks.dead-letter.v1",
	Partitions: 3,
	Retention:  30 * 24 * time.Hour,
	Producers:  []string{"webhooks"},
}

// Topics is every topic of the platform.
func Topics() []Topic { return []Topic{Usage, FineTuningJobs, Notifications, WebhookDeadLetters} }

// Group is the consumer group service reads topic t in ("" when it does
// not).
func (t Topic) Group(service string) string {
	for _, c := range t.Consumers {
		if c.Service == service {
			return c.Group
		}
	}
	return ""
}

// Produces and Consumes say whether a service may write or read t.
func (t Topic) Produces(service string) bool { return slices.Contains(t.Producers, service) }
func (t Topic) Consumes(service string) bool { return t.Group(service) != "" }

// Users are the services that use Kafka at all.
func Users() []string {
	var out []string
	for _, t := range Topics() {
		for _, s := range t.Producers {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		for _, c := range t.Consumers {
			if !slices.Contains(out, c.Service) {
				out = append(out, c.Service)
			}
		}
	}
	return out
}
