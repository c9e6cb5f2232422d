// Package outbox is the bounded, ordered, durable queue between a service
// and Kafka: a record is appended to a log on local disk (one write, no
// network) and a drainer produces the log to Kafka in order with an
// idempotent producer, forgetting a record only once Kafka acknowledged
// it. A service keeps serving while Kafka is away: its records wait on
// disk, survive the process being killed, and are delivered in order when
// Kafka returns. Delivery is at least once (a crash between the
// acknowledgment and the cursor's write produces a record again); the
// consumers are idempotent by the record's key of business (a request id).
//
// Layout of the directory: segment files NNNNNNNNNNNNNNNNNNNN.log named by
// the sequence number of their first record, each record
// [len u32][crc32c u32][seq u64][key len u16][key][value]; and "cursor",
// the sequence number of the first record not yet acknowledged. A torn
// record at the end (a crash in the middle of a write) is cut off at open.
package outbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Options configure an outbox.
type Options struct {
	// Dir holds the log; one process per directory (it is locked).
	Dir string
	// Topic the records are produced to.
	Topic string
	// MaxBytes bounds what waits for Kafka: Full reports true beyond it,
	// and the service stops admitting work that would add to it (default
	// 64 MiB).
	MaxBytes int64
	// SegmentBytes is the size at which a new segment starts (default
	// 8 MiB); a segment is deleted once all of it is acknowledged.
	SegmentBytes int64
	// Batch bounds how many records are produced before waiting for their
	// acknowledgments (default 512).
	Batch int
	Log   *slog.Logger
	// Meter receives bulkhead.outbox.* metrics (nil: none).
	Meter metric.Meter
}

// Producer is the part of a Kafka client the outbox uses (*kgo.Client).
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

type record struct {
	seq        uint64
	key, value []byte
	size       int64
	at         time.Time
}

// Outbox is an open outbox.
type Outbox struct {
	o    Options
	p    Producer
	lock *os.File

	mu       sync.Mutex
	seg      *os.File
	segStart uint64
	segSize  int64
	next     uint64
	pending  []record // appended, not acknowledged, in order
	bytes    int64
	wake     chan struct{}
	closed   bool

	delivered  metric.Int64Counter
	failures   metric.Int64Counter
	diskErrors metric.Int64Counter

	stop context.CancelFunc
	done chan struct{}
}

// Open opens (or creates) the outbox in o.Dir, loads what an earlier
// process left unacknowledged and starts delivering it to p.
func Open(o Options, p Producer) (*Outbox, error) {
	if o.Dir == "" || o.Topic == "" {
		return nil, errors.New("outbox: Dir and Topic are required")
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 64 << 20
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 8 << 20
	}
	if o.Batch == 0 {
		o.Batch = 512
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(o.Dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("outbox %s is in use by another process: give each replica its own directory", o.Dir)
	}
	b := &Outbox{o: o, p: p, lock: lock, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if err := b.load(); err != nil {
		lock.Close()
		return nil, err
	}
	if err := b.instrument(); err != nil {
		lock.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	go b.drain(ctx)
	return b, nil
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("outbox: closed")

// Append queues one record: written to the log before it returns, then
// delivered in the order of Append calls. A disk that refuses the write
// is logged and counted; the record is still delivered unless the process
// dies first.
func (b *Outbox) Append(key, value []byte) error {
	return b.AppendNumbered(key, func(uint64) ([]byte, error) { return value, nil })
}

// AppendNumbered is Append with a value that carries its own position:
// value is called with the record's sequence number (increasing in the
// order of delivery, across restarts).
func (b *Outbox) AppendNumbered(key []byte, value func(seq uint64) ([]byte, error)) error {
	if len(key) > 1<<16-1 {
		return fmt.Errorf("outbox: key of %d bytes (at most 65535)", len(key))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	v, err := value(b.next)
	if err != nil {
		return err
	}
	r := record{seq: b.next, key: slices.Clone(key), value: slices.Clone(v), at: time.Now()}
	frame := encode(r)
	r.size = int64(len(frame))
	if err := b.write(frame); err != nil {
		b.o.Log.Error("outbox: the record is kept in memory only", "error", err, "dir", b.o.Dir)
		if b.diskErrors != nil {
			b.diskErrors.Add(context.Background(), 1)
		}
	}
	b.next++
	b.pending = append(b.pending, r)
	b.bytes += r.size
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return nil
}

// Full says whether what waits for Kafka has reached MaxBytes.
func (b *Outbox) Full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bytes >= b.o.MaxBytes
}

// Lag is how many records wait and how old the oldest is.
func (b *Outbox) Lag() (int, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 {
		return 0, 0
	}
	return len(b.pending), time.Since(b.pending[0].at)
}

// Close stops accepting records and delivers what waits until ctx ends;
// what is left stays on disk for the next process.
func (b *Outbox) Close(ctx context.Context) error {
	b.mu.Lock()
	already := b.closed
	b.closed = true
	b.mu.Unlock()
	if already {
		return nil
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
	// The drainer ends when nothing is left; ctx bounds the wait.
	select {
	case <-b.done:
	case <-ctx.Done():
		b.stop()
		<-b.done
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.pending); n > 0 {
		b.o.Log.Warn("outbox: records left for the next start", "records", n, "dir", b.o.Dir)
	}
	if b.seg != nil {
		b.seg.Sync()
		b.seg.Close()
	}
	return b.lock.Close()
}

func (b *Outbox) instrument() error {
	m := b.o.Meter
	if m == nil {
		return nil
	}
	attrs := metric.WithAttributes(attribute.String("topic", b.o.Topic))
	var err error
	if b.delivered, err = m.Int64Counter("bulkhead.outbox.delivered", metric.WithDescription("records Kafka acknowledged")); err != nil {
		return err
	}
	if b.failures, err = m.Int64Counter("bulkhead.outbox.produce_failures", metric.WithDescription("produce attempts that failed (Kafka unreachable or refusing); the records are tried again")); err != nil {
		return err
	}
	if b.diskErrors, err = m.Int64Counter("bulkhead.outbox.disk_errors", metric.WithDescription("records the disk refused (kept in memory only)")); err != nil {
		return err
	}
	_, err = m.Int64ObservableGauge("bulkhead.outbox.pending", metric.WithDescription("records waiting for Kafka's acknowledgment"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			n, _ := b.Lag()
			o.Observe(int64(n), attrs)
			return nil
		}))
	if err != nil {
		return err
	}
	_, err = m.Float64ObservableGauge("bulkhead.outbox.lag", metric.WithUnit("s"), metric.WithDescription("age of the oldest record waiting for Kafka"),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			_, age := b.Lag()
			o.Observe(age.Seconds(), attrs)
			return nil
		}))
	return err
}

// drain produces the pending records in order, a batch at a time, and
// moves the cursor past each batch Kafka acknowledged whole.
func (b *Outbox) drain(ctx context.Context) {
	defer close(b.done)
	backoff := 100 * time.Millisecond
	for {
		b.mu.Lock()
		batch := slices.Clone(b.pending[:min(len(b.pending), b.o.Batch)])
		closed := b.closed
		b.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			select {
			case <-b.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if err := b.produce(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return
			}
			if b.failures != nil {
				b.failures.Add(ctx, 1, metric.WithAttributes(attribute.String("topic", b.o.Topic)))
			}
			b.o.Log.Warn("outbox: Kafka did not take the records; trying again", "error", err, "records", len(batch), "retry_in", backoff.String())
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if err := b.acknowledge(batch[len(batch)-1].seq + 1); err != nil {
			b.o.Log.Error("outbox: cursor", "error", err)
		}
		if b.delivered != nil {
			b.delivered.Add(ctx, int64(len(batch)), metric.WithAttributes(attribute.String("topic", b.o.Topic)))
		}
	}
}

// produce sends batch and waits for every acknowledgment; one failure
// fails the batch (which is produced again whole: the consumers are
// idempotent, and with the idempotent producer a partition's order holds).
func (b *Outbox) produce(ctx context.Context, batch []record) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, r := range batch {
		wg.Add(1)
		b.p.Produce(ctx, &kgo.Record{Topic: b.o.Topic, Key: r.key, Value: r.value}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	return first
}

// acknowledge forgets the records before seq: the cursor is written
// (atomically), then the segments wholly before it are deleted.
func (b *Outbox) acknowledge(seq uint64) error {
	tmp := filepath.Join(b.o.Dir, "cursor.tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(seq, 10)), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(b.o.Dir, "cursor")); err != nil {
		return err
	}
	b.mu.Lock()
	i := 0
	for i < len(b.pending) && b.pending[i].seq < seq {
		b.bytes -= b.pending[i].size
		i++
	}
	b.pending = slices.Delete(b.pending, 0, i)
	current := b.segStart
	b.mu.Unlock()
	segs, err := segments(b.o.Dir)
	if err != nil {
		return err
	}
	// A segment is done when the next one starts at or before seq.
	for j := 0; j+1 < len(segs); j++ {
		if segs[j+1] <= seq && segs[j] != current {
			os.Remove(segmentPath(b.o.Dir, segs[j]))
		}
	}
	return nil
}

// write appends a frame to the current segment, starting a new one when
// it is full.
func (b *Outbox) write(frame []byte) error {
	if b.seg == nil || b.segSize >= b.o.SegmentBytes {
		if b.seg != nil {
			b.seg.Close()
			b.seg = nil
		}
		f, err := os.OpenFile(segmentPath(b.o.Dir, b.next), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		b.seg, b.segStart, b.segSize = f, b.next, 0
	}
	n, err := b.seg.Write(frame)
	b.segSize += int64(n)
	return err
}

// load reads the cursor and the records at or after it.
func (b *Outbox) load() error {
	cursor := uint64(0)
	if raw, err := os.ReadFile(filepath.Join(b.o.Dir, "cursor")); err == nil {
		if cursor, err = strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64); err != nil {
			return fmt.Errorf("outbox: %s/cursor: %w", b.o.Dir, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("outbox: %w", err)
	}
	b.next = cursor
	segs, err := segments(b.o.Dir)
	if err != nil {
		return err
	}
	for _, start := range segs {
		path := segmentPath(b.o.Dir, start)
		recs, good, err := readSegment(path)
		if err != nil {
			return err
		}
		if st, err := os.Stat(path); err == nil && st.Size() > good {
			b.o.Log.Warn("outbox: cutting a torn record off the end of a segment", "segment", path, "bytes", st.Size()-good)
			if err := os.Truncate(path, good); err != nil {
				return fmt.Errorf("outbox: %w", err)
			}
		}
		for _, r := range recs {
			if r.seq >= cursor {
				b.pending = append(b.pending, r)
				b.bytes += r.size
			}
			b.next = max(b.next, r.seq+1)
		}
	}
	// New records go to a new segment: the old ones are never written to
	// again, and are deleted once acknowledged.
	return nil
}

func encode(r record) []byte {
	body := make([]byte, 8+2+len(r.key)+len(r.value))
	binary.BigEndian.PutUint64(body, r.seq)
	binary.BigEndian.PutUint16(body[8:], uint16(len(r.key)))
	copy(body[10:], r.key)
	copy(body[10+len(r.key):], r.value)
	frame := make([]byte, 8+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	binary.BigEndian.PutUint32(frame[4:], crc32.Checksum(body, castagnoli))
	copy(frame[8:], body)
	return frame
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// readSegment decodes a segment's records up to the first that is
// incomplete or corrupt; good is the length of the valid prefix.
func readSegment(path string) (recs []record, good int64, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("outbox: %w", err)
	}
	for off := 0; ; {
		if len(raw)-off < 8 {
			return recs, int64(off), nil
		}
		n := int(binary.BigEndian.Uint32(raw[off:]))
		sum := binary.BigEndian.Uint32(raw[off+4:])
		if n < 10 || len(raw)-off-8 < n {
			return recs, int64(off), nil
		}
		body := raw[off+8 : off+8+n]
		if crc32.Checksum(body, castagnoli) != sum {
			return recs, int64(off), nil
		}
		kl := int(binary.BigEndian.Uint16(body[8:]))
		if 10+kl > n {
			return recs, int64(off), nil
		}
		recs = append(recs, record{
			seq: binary.BigEndian.Uint64(body), key: slices.Clone(body[10 : 10+kl]), value: slices.Clone(body[10+kl:]),
			size: int64(8 + n), at: time.Now(),
		})
		off += 8 + n
	}
}

func segmentPath(dir string, start uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d.log", start))
}

// segments lists the segments' first sequence numbers, in order.
func segments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var out []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}
