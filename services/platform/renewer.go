package platform

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// renewer keeps something Vault issues with a lifetime (a certificate, a
// database user) fresh: it obtains it at start, again when it is due, and
// after a failure keeps the current one, logs and counts the failure, and
// retries with a backoff never later than half of what is left of its life.
type renewer struct {
	what  string
	log   *slog.Logger
	renew func(context.Context) (expires, renewAt time.Time, err error)

	mu       sync.Mutex
	expires  time.Time
	renewAt  time.Time
	issued   int
	failures int
	done     chan struct{}
	wg       sync.WaitGroup
}

// startRenewer obtains the first one (an error is returned) and renews in
// the background until close.
func startRenewer(ctx context.Context, what string, log *slog.Logger, renew func(context.Context) (time.Time, time.Time, error)) (*renewer, error) {
	r := &renewer{what: what, log: log, renew: renew, done: make(chan struct{})}
	if err := r.once(ctx); err != nil {
		return nil, err
	}
	r.wg.Add(1)
	go r.loop()
	return r, nil
}

func (r *renewer) once(ctx context.Context) error {
	expires, renewAt, err := r.renew(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.expires, r.renewAt = expires, renewAt
	r.issued++
	r.mu.Unlock()
	return nil
}

func (r *renewer) loop() {
	defer r.wg.Done()
	backoff := time.Second
	for {
		r.mu.Lock()
		wait := time.Until(r.renewAt)
		r.mu.Unlock()
		select {
		case <-r.done:
			return
		case <-time.After(max(wait, 0)):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.once(ctx)
		cancel()
		if err == nil {
			backoff = time.Second
			continue
		}
		r.mu.Lock()
		r.failures++
		left := time.Until(r.expires)
		r.renewAt = time.Now().Add(min(backoff, max(left/2, time.Second)))
		r.mu.Unlock()
		r.log.Error("renewing "+r.what+" failed; the current one keeps serving", "error", err, "valid_for", left.Round(time.Second))
		backoff = min(backoff*2, 30*time.Second)
	}
}

func (r *renewer) close() {
	close(r.done)
	r.wg.Wait()
}

// counts returns how many were obtained and how many renewals failed.
func (r *renewer) counts() (issued, failures int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.issued, r.failures
}
