package testenv

import (
	"fmt"
	"testing"
	"time"
)

// Eventually waits for something that happens asynchronously: it calls
// cond until it returns nil, and fails the test with what and cond's last
// error when within has passed. It polls often at first (10 ms) and less
// as the wait grows (up to 250 ms), so a fast change is seen fast and a
// slow machine only makes the test slower.
//
// within is a bound against a hang, not a measurement: choose it many
// times longer than the event takes on a loaded machine. Tests assert on
// events and counters, never on how much happened in a fixed window.
func Eventually(t testing.TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Wait(within, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Wait is Eventually for code that cannot fail a test itself (a
// goroutine, a benchmark's setup): it returns nil once cond does, or an
// error with cond's last error once within has passed.
func Wait(within time.Duration, cond func() error) error {
	deadline := time.Now().Add(within)
	pause := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s: %w", within, err)
		}
		time.Sleep(pause)
		pause = min(pause*3/2, 250*time.Millisecond)
	}
}

// Until makes a condition of a boolean and the reason it is not yet true.
func Until(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}
