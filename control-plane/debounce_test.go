package controlplane

import (
	"context"
	"testing"
	"time"

	"github.com/bulkhead-mesh/bulkhead/control-plane/provider"
	"github.com/bulkhead-mesh/bulkhead/control-plane/resource"
)

// fakeClock hands out timers that fire only when the test says, so the
// debouncer's decisions do not depend on how fast the machine is.
type fakeClock struct{ timers chan fakeTimer }

type fakeTimer struct {
	d    time.Duration
	fire chan time.Time
}

func (c fakeClock) after(d time.Duration) <-chan time.Time {
	t := fakeTimer{d: d, fire: make(chan time.Time, 1)}
	c.timers <- t
	return t.fire
}

// next returns the next timer the debouncer asked for.
func (c fakeClock) next(t *testing.T, want time.Duration) fakeTimer {
	t.Helper()
	select {
	case tm := <-c.timers:
		if tm.d != want {
			t.Fatalf("the debouncer asked for a %s timer; want %s", tm.d, want)
		}
		return tm
	case <-time.After(10 * time.Second):
		t.Fatalf("the debouncer asked for no %s timer", want)
		return fakeTimer{}
	}
}

func update(n int) provider.Update {
	r := &resource.Resources{}
	r.SetOrigin(resource.Key{Kind: "Marker"}, resource.Origin{Line: n})
	return provider.Update{Resources: r}
}

func lineOf(u provider.Update) int { return u.Resources.Origin(resource.Key{Kind: "Marker"}).Line }

// startDebouncer runs a debouncer (quiet 100 ms, at most 1 s) on a fake
// clock until the test ends: updates go in, what it emits comes out.
func startDebouncer(t *testing.T) (fakeClock, chan<- provider.Update, <-chan provider.Update) {
	clock := fakeClock{timers: make(chan fakeTimer, 64)}
	in, out := make(chan provider.Update), make(chan provider.Update, 8)
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go debouncer{quiet: 100 * time.Millisecond, maxDelay: time.Second, after: clock.after}.run(ctx, in, func(u provider.Update) { out <- u })
	return clock, in, out
}

func TestDebouncerFoldsABurstIntoItsLatestUpdate(t *testing.T) {
	clock, in, out := startDebouncer(t)

	// Twenty updates in a burst: a deadline at the first, a new quiet timer
	// at each; only the last quiet timer firing emits, and only the latest.
	in <- update(1)
	clock.next(t, time.Second)
	var quiet fakeTimer
	for i := 1; i <= 20; i++ {
		if i > 1 {
			in <- update(i)
		}
		stale := quiet
		quiet = clock.next(t, 100*time.Millisecond)
		if stale.fire != nil {
			stale.fire <- time.Now() // a superseded timer firing does nothing
		}
	}
	select {
	case u := <-out:
		t.Fatalf("emitted update %d before the input was quiet", lineOf(u))
	default:
	}
	quiet.fire <- time.Now()
	if u := <-out; lineOf(u) != 20 {
		t.Fatalf("emitted update %d; want the latest, 20", lineOf(u))
	}
	select {
	case u := <-out:
		t.Fatalf("a burst emitted twice (update %d)", lineOf(u))
	default:
	}
}

func TestDebouncerBoundsTheDelayOfChangesThatNeverPause(t *testing.T) {
	clock, in, out := startDebouncer(t)

	in <- update(1)
	deadline := clock.next(t, time.Second)
	clock.next(t, 100*time.Millisecond)
	for i := 2; i <= 5; i++ { // each update arrives before the input is quiet
		in <- update(i)
		clock.next(t, 100*time.Millisecond)
	}
	deadline.fire <- time.Now()
	if u := <-out; lineOf(u) != 5 {
		t.Fatalf("at the deadline emitted update %d; want the latest, 5", lineOf(u))
	}
	// The next burst starts a new deadline.
	in <- update(6)
	clock.next(t, time.Second)
	clock.next(t, 100*time.Millisecond).fire <- time.Now()
	if u := <-out; lineOf(u) != 6 {
		t.Fatalf("emitted update %d; want 6", lineOf(u))
	}
}
