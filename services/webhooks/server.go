// Package webhooks tells accounts what happened: an account registers
// endpoints for notification types (a fine-tuning job ended, a budget
// threshold crossed); the notifications the services put on Kafka
// (services/events: Notifications) become one delivery per subscribed
// endpoint (intake.go), sent by a pool of deliverers (deliver.go) signed
// as the Standard Webhooks specification says, retried with exponential
// backoff for a bounded time, then parked in the dead-letter topic and
// listed by the API. Deliveries never reach loopback, link-local or
// private addresses unless the operator allows them (ssrf.go), and run
// apart from every request's path: a slow endpoint holds one deliverer
// for at most the attempt's timeout.
package webhooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"net"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bulkhead-mesh/bulkhead/services/events"
	"github.com/bulkhead-mesh/bulkhead/services/platform"
	webhooksv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/webhooks/v1"
)

// EventTypes are the notifications an endpoint may subscribe to.
var EventTypes = []string{
	"fine_tuning.job.succeeded", "fine_tuning.job.failed", "fine_tuning.job.cancelled",
	"budget.threshold.80", "budget.threshold.100",
}

// Options are the webhooks service's own settings.
type Options struct {
	// AllowNetworks are CIDRs (or addresses) deliveries may reach although
	// they are loopback, link-local or private.
	AllowNetworks []string
	// RetryBase is the wait after the first failed attempt; it doubles
	// with each failure, up to RetryMax.
	RetryBase, RetryMax time.Duration
	// RetryFor bounds how long a delivery is tried from its first
	// attempt; then it is parked in the dead-letter topic.
	RetryFor time.Duration
	// Timeout bounds one attempt (connection, request and answer).
	Timeout time.Duration
	// Deliverers send at once (each endpoint has one delivery in flight).
	Deliverers int
	// MaxEndpoints bounds an account's endpoints.
	MaxEndpoints int
}

// Defaults.
const (
	DefaultRetryBase    = 5 * time.Second
	DefaultRetryMax     = 10 * time.Minute
	DefaultRetryFor     = 24 * time.Hour
	DefaultTimeout      = 10 * time.Second
	DefaultDeliverers   = 16
	DefaultMaxEndpoints = 16
)

// networks is a repeatable, comma-separated flag value.
type networks struct{ o *Options }

func (n networks) String() string { return strings.Join(n.o.AllowNetworks, ",") }
func (n networks) Set(v string) error {
	n.o.AllowNetworks = append(n.o.AllowNetworks, strings.Split(v, ",")...)
	return nil
}

// Flags registers the options.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.Var(networks{o}, "allow-network", "CIDR or address deliveries may reach although loopback, link-local or private (repeatable, comma-separated)")
	fs.DurationVar(&o.RetryBase, "retry-base", DefaultRetryBase, "wait after a delivery's first failure; doubles with each failure")
	fs.DurationVar(&o.RetryMax, "retry-max", DefaultRetryMax, "longest wait between two attempts")
	fs.DurationVar(&o.RetryFor, "retry-for", DefaultRetryFor, "how long a delivery is tried before it is parked in the dead-letter topic")
	fs.DurationVar(&o.Timeout, "timeout", DefaultTimeout, "bound of one delivery attempt")
	fs.IntVar(&o.Deliverers, "deliverers", DefaultDeliverers, "deliveries sent at once")
	fs.IntVar(&o.MaxEndpoints, "max-endpoints", DefaultMaxEndpoints, "endpoints an account may register")
}

type server struct {
	webhooksv1.UnimplementedWebhooksServiceServer
	o        Options
	store    *store
	guard    *guard
	sealer   *sealer
	resolver *net.Resolver
}

var _ webhooksv1.WebhooksServiceServer = (*server)(nil)

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.RetryBase, DefaultRetryBase)
	def(&o.RetryMax, DefaultRetryMax)
	def(&o.RetryFor, DefaultRetryFor)
	def(&o.Timeout, DefaultTimeout)
	if o.Deliverers <= 0 {
		o.Deliverers = DefaultDeliverers
	}
	if o.MaxEndpoints <= 0 {
		o.MaxEndpoints = DefaultMaxEndpoints
	}
}

// Setup wires the service.
func Setup(opts *Options) platform.Setup {
	return func(ctx context.Context, rt *platform.Runtime) error {
		o := *opts
		o.defaults()
		g, err := newGuard(o.AllowNetworks)
		if err != nil {
			return platform.InvalidField("allow-network", "%v", err)
		}
		key, err := rt.Secrets.Get("secret_key")
		if err != nil {
			return err
		}
		sl, err := newSealer(key)
		if err != nil {
			return err
		}
		db, err := rt.Postgres(ctx, migrations)
		if err != nil {
			return err
		}
		s := &server{o: o, store: &store{db: db}, guard: g, sealer: sl, resolver: net.DefaultResolver}
		dead, err := rt.KafkaProducer(events.WebhookDeadLetters.Name)
		if err != nil {
			return err
		}
		counter, err := rt.Telemetry.Meter.Int64Counter("bulkhead.webhooks.attempts", metric.WithDescription("delivery attempts by result (delivered, retry, dead)"))
		if err != nil {
			return err
		}
		d := newDeliverer(s, dead, counter, rt.Log)
		if err := startIntake(rt, s.store, d.wake); err != nil {
			return err
		}
		d.start(rt)
		webhooksv1.RegisterWebhooksServiceServer(rt.GRPC, s)
		return nil
	}
}

// deliveryID is the webhook-id of a notification's delivery to an
// endpoint: the same on every attempt.
func deliveryID(eventID, endpoint string) string {
	h := sha256.Sum256([]byte(eventID + "\x00" + endpoint))
	return "msg_" + hex.EncodeToString(h[:12])
}

func (s *server) CreateEndpoint(ctx context.Context, req *webhooksv1.CreateEndpointRequest) (*webhooksv1.CreateEndpointResponse, error) {
	if req.GetAccountId() == "" {
		return nil, platform.InvalidField("account_id", "is required")
	}
	if err := s.guard.checkURL(ctx, req.GetUrl(), s.resolver); err != nil {
		return nil, platform.InvalidField("url", "%q %v", req.GetUrl(), err)
	}
	if len(req.GetEventTypes()) == 0 {
		return nil, platform.InvalidField("event_types", "is required: one or more of %s", strings.Join(EventTypes, ", "))
	}
	var types []string
	for i, t := range req.GetEventTypes() {
		if !slices.Contains(EventTypes, t) {
			return nil, platform.InvalidField("event_types", "entry %d: %q is not an event type (%s)", i, t, strings.Join(EventTypes, ", "))
		}
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	if len(req.GetDescription()) > 512 {
		return nil, platform.InvalidField("name", "is longer than 512 characters")
	}
	n, err := s.store.countEndpoints(ctx, req.GetAccountId())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "endpoints: %v", err)
	}
	if n >= s.o.MaxEndpoints {
		return nil, status.Errorf(codes.FailedPrecondition, "the account has %d endpoints, the most it may have; delete one first", n)
	}
	key, secret := newSecret()
	e := &webhooksv1.Endpoint{Id: platform.NewID("we_"), AccountId: req.GetAccountId(), Url: req.GetUrl(), EventTypes: types, Description: req.GetDescription(), CreatedAt: timestamppb.Now(),
		SecretHint: secret[:len(SecretPrefix)+4] + "…" + secret[len(secret)-4:]}
	if err := s.store.createEndpoint(ctx, e, s.sealer.seal(key, e.Id)); err != nil {
		return nil, status.Errorf(codes.Internal, "store the endpoint: %v", err)
	}
	return &webhooksv1.CreateEndpointResponse{Endpoint: e, Secret: secret}, nil
}

func (s *server) ListEndpoints(ctx context.Context, req *webhooksv1.ListEndpointsRequest) (*webhooksv1.ListEndpointsResponse, error) {
	if req.GetAccountId() == "" {
		return nil, platform.InvalidField("account_id", "is required")
	}
	es, err := s.store.endpoints(ctx, req.GetAccountId())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "endpoints: %v", err)
	}
	return &webhooksv1.ListEndpointsResponse{Endpoints: es}, nil
}

func (s *server) DeleteEndpoint(ctx context.Context, req *webhooksv1.DeleteEndpointRequest) (*webhooksv1.DeleteEndpointResponse, error) {
	if req.GetAccountId() == "" {
		return nil, platform.InvalidField("account_id", "is required")
	}
	err := s.store.deleteEndpoint(ctx, req.GetAccountId(), req.GetEndpointId())
	if errors.Is(err, errNotFound) {
		return nil, status.Errorf(codes.NotFound, "webhook endpoint %q does not exist", req.GetEndpointId())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "delete: %v", err)
	}
	return &webhooksv1.DeleteEndpointResponse{}, nil
}

func (s *server) ListDeadLetters(ctx context.Context, req *webhooksv1.ListDeadLettersRequest) (*webhooksv1.ListDeadLettersResponse, error) {
	if req.GetAccountId() == "" {
		return nil, platform.InvalidField("account_id", "is required")
	}
	limit, err := platform.PageLimit(req.GetLimit())
	if err != nil {
		return nil, err
	}
	out, more, err := s.store.deadLetters(ctx, req.GetAccountId(), req.GetAfter(), limit)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "dead letters: %v", err)
	}
	return &webhooksv1.ListDeadLettersResponse{DeadLetters: out, HasMore: more}, nil
}
