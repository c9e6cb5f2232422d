package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bulkhead-mesh/bulkhead/services/platform"
	webhooksv1 "github.com/bulkhead-mesh/bulkhead/services/proto/bulkhead/webhooks/v1"
)

// deliverer sends the due deliveries: Deliverers at once, one per
// endpoint at a time (an endpoint's deliveries go in order), each attempt
// bounded by Timeout.
type deliverer struct {
	s       *server
	client  *http.Client
	dead    *kgo.Client
	attempt metric.Int64Counter
	log     *slog.Logger
	kick    chan struct{}
}

func newDeliverer(s *server, dead *kgo.Client, attempt metric.Int64Counter, log *slog.Logger) *deliverer {
	dialer := &net.Dialer{Timeout: s.o.Timeout, Control: s.guard.control}
	tr := &http.Transport{
		// No proxy: the address checked is the address reached.
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		TLSHandshakeTimeout: s.o.Timeout,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}
	return &deliverer{s: s, dead: dead, attempt: attempt, log: log, kick: make(chan struct{}, 1),
		client: &http.Client{Transport: tr, Timeout: s.o.Timeout,
			// A redirect could lead anywhere: it is an answer, not followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// wake tells the deliverers there is new work.
func (d *deliverer) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *deliverer) start(rt *platform.Runtime) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, d.s.o.Deliverers)
	for range d.s.o.Deliverers {
		go func() {
			defer func() { done <- struct{}{} }()
			d.loop(ctx)
		}()
	}
	rt.OnStop(func() error {
		cancel()
		for range d.s.o.Deliverers {
			<-done
		}
		return nil
	})
}

func (d *deliverer) loop(ctx context.Context) {
	idle := 250 * time.Millisecond
	for ctx.Err() == nil {
		// The lease outlives one attempt: a deliverer that dies mid-way
		// leaves the delivery to another after it.
		dl, err := d.s.store.claim(ctx, d.s.o.Timeout+5*time.Second)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("webhooks: claim a delivery", "error", err)
		}
		if dl == nil {
			select {
			case <-ctx.Done():
			case <-d.kick:
			case <-time.After(idle):
			}
			continue
		}
		d.wake() // others may find work too
		d.send(ctx, dl)
	}
}

// send makes one attempt and records what it led to.
func (d *deliverer) send(ctx context.Context, dl *delivery) {
	code, err := d.post(ctx, dl)
	bg := context.WithoutCancel(ctx)
	if err == nil {
		d.count(ctx, "delivered")
		if err := d.s.store.delivered(bg, dl.id, code); err != nil {
			d.log.Warn("webhooks: record a delivery (it will be sent again)", "delivery", dl.id, "error", err)
		}
		return
	}
	msg := err.Error()
	wait := d.backoff(dl.attempts)
	if time.Since(dl.firstAttempt)+wait > d.s.o.RetryFor {
		d.count(ctx, "dead")
		if err := d.park(bg, dl, code, msg); err != nil {
			d.log.Warn("webhooks: park a delivery (it stays pending)", "delivery", dl.id, "error", err)
			_ = d.s.store.retryAt(bg, dl.id, time.Now().Add(wait), code, msg)
		}
		return
	}
	d.count(ctx, "retry")
	if err := d.s.store.retryAt(bg, dl.id, time.Now().Add(wait), code, msg); err != nil {
		d.log.Warn("webhooks: schedule a retry", "delivery", dl.id, "error", err)
	}
}

func (d *deliverer) count(ctx context.Context, result string) {
	d.attempt.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
}

// backoff is the wait after the n-th failed attempt: RetryBase doubled
// each time, up to RetryMax, less up to a tenth at random (so that an
// endpoint back after an outage is not hit by everything at once).
func (d *deliverer) backoff(n int32) time.Duration {
	w := d.s.o.RetryBase
	for i := int32(1); i < n && w < d.s.o.RetryMax; i++ {
		w *= 2
	}
	w = min(w, d.s.o.RetryMax)
	return w - time.Duration(rand.Int64N(int64(w)/10+1))
}

// post sends the delivery, signed; any answer but 2xx is a failure.
func (d *deliverer) post(ctx context.Context, dl *delivery) (int, error) {
	key, err := d.s.sealer.open(dl.secret, dl.endpoint)
	if err != nil {
		return 0, fmt.Errorf("the endpoint's secret cannot be opened: %v", err)
	}
	body := []byte(dl.payload)
	now := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Bulkhead-Webhooks/1")
	req.Header.Set("webhook-id", dl.id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(key, dl.id, now, body))
	resp, err := d.client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap()
		}
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("the endpoint answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// park puts the delivery in the dead-letter topic, then marks it dead.
func (d *deliverer) park(ctx context.Context, dl *delivery, code int, msg string) error {
	letter := &webhooksv1.DeadLetter{Id: dl.id, EndpointId: dl.endpoint, AccountId: dl.account, EventId: dl.eventID, EventType: dl.eventType,
		Attempts: dl.attempts, LastStatus: int32(code), LastError: msg, FirstAttemptAt: timestamppb.New(dl.firstAttempt), DeadAt: timestamppb.Now(), Payload: dl.payload}
	b, err := protojson.Marshal(letter)
	if err != nil {
		return err
	}
	if err := d.dead.ProduceSync(ctx, &kgo.Record{Key: []byte(dl.account), Value: b}).FirstErr(); err != nil {
		return fmt.Errorf("dead-letter topic: %w", err)
	}
	return d.s.store.dead(ctx, dl.id, code, msg)
}
