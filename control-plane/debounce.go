package controlplane

import (
	"context"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/provider"
)

// debouncer folds bursts of provider updates into one translation: it
// hands on the latest update once the input has been quiet for quiet, or
// at the latest maxDelay after the first update of a burst, so that a
// stream of changes that never pauses is still translated.
type debouncer struct {
	quiet, maxDelay time.Duration
	// after is time.After; tests drive the clock through it.
	after func(time.Duration) <-chan time.Time
}

// run reads updates until ctx ends, calling emit with the latest of each
// burst (on run's goroutine: the next burst waits for emit to return).
func (d debouncer) run(ctx context.Context, updates <-chan provider.Update, emit func(provider.Update)) {
	var pending *provider.Update
	var quiet, deadline <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-updates:
			if pending == nil {
				deadline = d.after(d.maxDelay)
			}
			pending = &u
			quiet = d.after(d.quiet)
			continue
		case <-quiet:
		case <-deadline:
		}
		if pending == nil {
			continue
		}
		u := *pending
		pending, quiet, deadline = nil, nil, nil
		emit(u)
	}
}
