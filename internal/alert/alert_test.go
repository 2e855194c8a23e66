package alert

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNetworkOf(t *testing.T) {
	tests := []struct {
		addr, want string
		ok         bool
	}{
		{"203.0.113.77", "203.0.113.0/24", true},
		{"::ffff:203.0.113.77", "203.0.113.0/24", true},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", true},
		{"not an address", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := NetworkOf(tt.addr)
		if got != tt.want || ok != tt.ok {
			t.Errorf("NetworkOf(%q) = %q, %v; want %q, %v", tt.addr, got, ok, tt.want, tt.ok)
		}
	}
}

type sink struct {
	mu      sync.Mutex
	events  []Event
	dropped int
}

func (s *sink) record(ctx context.Context, e Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	return nil
}

func (s *sink) counts() (recorded, dropped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events), s.dropped
}

// addr returns the i-th of many distinct client addresses.
func addr(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }

// Far more alerts than the recording queue holds are all recorded, as long as
// the database keeps up: nothing waits for a webhook any more.
func TestEveryAlertIsRecorded(t *testing.T) {
	s := &sink{}
	m := New(Options{Threshold: 1, Record: s.record, Dropped: func(string) { s.mu.Lock(); s.dropped++; s.mu.Unlock() }})
	stop := run(m)
	const batches, perBatch = 6, 500
	now := time.Now()
	for b := 0; b < batches; b++ {
		for i := 0; i < perBatch; i++ {
			m.Observe(Observation{At: now, Addr: addr(b*perBatch + i), Status: 401})
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if n, _ := s.counts(); n == (b+1)*perBatch {
				break
			}
			if time.Now().After(deadline) {
				n, d := s.counts()
				t.Fatalf("batch %d: %d recorded, %d dropped", b, n, d)
			}
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n, d := s.counts(); n != batches*perBatch || d != 0 {
		t.Errorf("%d alerts recorded, %d dropped; want %d and none", n, d, batches*perBatch)
	}
}

// When the database is stuck, Observe still never blocks, and every alert
// that cannot be queued is counted and logged, none silently lost.
func TestStuckRecordingNeverBlocksAndCountsDrops(t *testing.T) {
	release := make(chan struct{})
	var recorded atomic.Int64
	var dropped atomic.Int64
	var logs bytes.Buffer
	var logMu sync.Mutex
	m := New(Options{Threshold: 1,
		Record:  func(ctx context.Context, e Event) error { <-release; recorded.Add(1); return nil },
		Dropped: func(string) { dropped.Add(1) },
		Logger:  slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logs.Write(p) }), nil)),
	})
	stop := run(m)
	const n = 3000
	start := time.Now()
	for i := 0; i < n; i++ {
		m.Observe(Observation{At: start, Addr: addr(i), Status: 429})
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("%d observations took %v with recording stuck", n, d)
	}
	close(release)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := recorded.Load() + dropped.Load(); got != n || dropped.Load() == 0 {
		t.Errorf("%d recorded + %d dropped = %d, want %d with some dropped", recorded.Load(), dropped.Load(), got, n)
	}
	logMu.Lock()
	lines := strings.Count(logs.String(), `"msg":"alert dropped"`)
	logMu.Unlock()
	if int64(lines) != dropped.Load() {
		t.Errorf("%d drops logged, %d counted", lines, dropped.Load())
	}
}

// run runs m until the returned stop is called; stop returns once m has
// recorded what was queued.
func run(m *Monitor) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
