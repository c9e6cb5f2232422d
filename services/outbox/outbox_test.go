package outbox_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bulkhead-mesh/bulkhead/internal/components"
	"github.com/bulkhead-mesh/bulkhead/internal/testenv"
	"github.com/bulkhead-mesh/bulkhead/services/outbox"
)

const topic = "outbox-test"

// An open broker (no users): what is tested is the outbox's log.
func broker(t *testing.T) *components.Kafka {
	return testenv.NewKafka(t, components.KafkaOptions{Topics: []string{topic}, Partitions: 3, DataDir: t.TempDir(), Open: true})
}

func producer(t *testing.T, k *components.Kafka) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Seeds...), kgo.RecordDeliveryTimeout(2*time.Second), kgo.RetryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consume reads the topic from the start until want records came, and
// returns the values per key in the order they came.
func consume(t *testing.T, k *components.Kafka, want int) map[string][]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got, n := map[string][]string{}, 0
	for n < want {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records; want %d", n, want)
		}
		f.EachRecord(func(r *kgo.Record) {
			got[string(r.Key)] = append(got[string(r.Key)], string(r.Value))
			n++
		})
	}
	return got
}

// inOrder checks that each key's values are 0, 1, 2, ... with no gap
// (a value may come twice, right after itself: at least once).
func inOrder(t *testing.T, got map[string][]string, perKey int) {
	t.Helper()
	for key, vals := range got {
		next := 0
		for _, v := range vals {
			n, _ := strconv.Atoi(v)
			switch {
			case n == next:
				next++
			case n < next: // a redelivery of what came already
			default:
				t.Fatalf("key %s: value %d after %d: out of order or lost (%v)", key, n, next-1, vals)
			}
		}
		if next != perKey {
			t.Fatalf("key %s: %d values; want %d", key, next, perKey)
		}
	}
}

func appendAll(t *testing.T, b *outbox.Outbox, keys, perKey, from int) {
	t.Helper()
	for i := from; i < perKey; i++ {
		for k := range keys {
			if err := b.Append([]byte(fmt.Sprintf("acct-%d", k)), []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func waitDrained(t *testing.T, b *outbox.Outbox) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "the outbox drained", func() error {
		n, age := b.Lag()
		return testenv.Until(n == 0, "%d records waiting (oldest %s)", n, age)
	})
}

// Records go out in order per key; while the broker is down they wait
// (Lag grows) and go out when it is back.
func TestDeliversInOrderAcrossABrokerOutage(t *testing.T) {
	t.Parallel()
	k := broker(t)
	b, err := outbox.Open(outbox.Options{Dir: t.TempDir(), Topic: topic, SegmentBytes: 4096}, producer(t, k))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	appendAll(t, b, 5, 100, 0)
	waitDrained(t, b)

	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	appendAll(t, b, 5, 300, 100)
	time.Sleep(3 * time.Second) // past the producer's delivery timeout: produce fails, the records stay
	if n, age := b.Lag(); n == 0 || age < 2*time.Second {
		t.Fatalf("with the broker down, lag %d records, oldest %s; want them waiting", n, age)
	}
	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, b)
	inOrder(t, consume(t, k, 5*300), 300)
}

// A process that stops with records unacknowledged leaves them on disk;
// the next one delivers them first, then its own; a torn record at the
// end (a crash in a write) is cut off.
func TestRecordsSurviveTheProcess(t *testing.T) {
	t.Parallel()
	k := broker(t)
	dir := t.TempDir()
	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	b, err := outbox.Open(outbox.Options{Dir: dir, Topic: topic}, producer(t, k))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.Open(outbox.Options{Dir: dir, Topic: topic}, producer(t, k)); err == nil {
		t.Fatal("a second process opened the same outbox")
	}
	appendAll(t, b, 3, 50, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	b.Close(ctx)
	cancel()
	// A torn write at the end of the last segment.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 1, 0, 9, 9})
	f.Close()

	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	b, err = outbox.Open(outbox.Options{Dir: dir, Topic: topic}, producer(t, k))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if n, _ := b.Lag(); n != 150 {
		t.Fatalf("reopened with %d records waiting; want the 150 left", n)
	}
	appendAll(t, b, 3, 80, 50)
	waitDrained(t, b)
	inOrder(t, consume(t, k, 3*80), 80)
	// Acknowledged segments are gone.
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.log")); len(segs) > 1 {
		t.Errorf("%d segments left after everything was acknowledged", len(segs))
	}
}

// Full reports the bound.
func TestFull(t *testing.T) {
	t.Parallel()
	k := broker(t)
	k.Stop()
	b, err := outbox.Open(outbox.Options{Dir: t.TempDir(), Topic: topic, MaxBytes: 1000}, producer(t, k))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Nothing can be delivered: Close gives up at its deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		b.Close(ctx)
	}()
	for i := 0; !b.Full(); i++ {
		if i > 100 {
			t.Fatal("100 records of 30 bytes and the 1000-byte outbox is not full")
		}
		b.Append([]byte("k"), []byte("a value of some twenty bytes"))
	}
}
