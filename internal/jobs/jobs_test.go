package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/jobs"
	"github.com/tokend/tokend/internal/sqlite"
	"github.com/tokend/tokend/internal/testutil"
)

const kind = "test_job"

// fixture is a service over a real SQLite file, for its outbox.
func fixture(t *testing.T) (*tokend.Service, tokend.Store) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	format, _ := apikey.NewFormat("tk")
	return tokend.NewService(store, tokend.Options{Format: format}), store
}

func enqueue(t *testing.T, svc *tokend.Service, payload string) {
	t.Helper()
	err := svc.RecordEvent(context.Background(), &tokend.AuditEvent{Actor: "test", Action: "test.event", TargetType: "none"},
		&tokend.Job{Kind: kind, Payload: []byte(payload)})
	if err != nil {
		t.Fatal(err)
	}
}

type results struct {
	mu sync.Mutex
	m  map[string]int
}

func (r *results) add(s string) { r.mu.Lock(); r.m[s]++; r.mu.Unlock() }
func (r *results) get(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[s]
}

// start runs a runner until the test ends (or stop is called) and returns stop.
func start(t *testing.T, r *jobs.Runner) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestDeliversRetriesAndGivesUp(t *testing.T) {
	tests := []struct {
		name      string
		failures  int   // the handler fails this many times, then succeeds
		err       error // what it fails with
		attempts  int   // handler calls expected
		delivered int
		retried   int
		failed    int
		lines     []string // the attempts' log lines: level and outcome
	}{
		{"first try", 0, nil, 1, 1, 0, 0, []string{"INFO delivered"}},
		{"temporary failures then success", 2, errors.New("relay busy"), 3, 1, 2, 0, []string{"WARN deferred", "WARN deferred", "INFO delivered"}},
		{"bounded tries", 99, errors.New("relay down"), 4, 0, 3, 1, []string{"WARN deferred", "WARN deferred", "WARN deferred", "ERROR failed"}},
		{"permanent failure", 99, jobs.Permanent(errors.New("no such mailbox")), 1, 0, 0, 1, []string{"WARN failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, _ := fixture(t)
			var calls atomic.Int32
			res := &results{m: map[string]int{}}
			logs := &testutil.Buffer{}
			r := jobs.New(svc.Outbox(), jobs.Options{Kind: kind, Attempts: 4, Backoff: time.Millisecond, Poll: 5 * time.Millisecond,
				Result: res.add, Logger: slog.New(slog.NewJSONHandler(logs, nil))},
				func(ctx context.Context, j tokend.Job) error {
					if string(j.Payload) != "payload" {
						t.Errorf("payload %q", j.Payload)
					}
					jobs.Annotate(ctx, "thing", "payload")
					if n := calls.Add(1); int(n) <= tt.failures {
						return tt.err
					}
					return nil
				})
			start(t, r)
			enqueue(t, svc, "payload")
			r.Notify()
			eventually(t, "a final outcome", func() bool { return res.get("delivered")+res.get("failed") == 1 })
			time.Sleep(20 * time.Millisecond) // nothing more may happen
			if int(calls.Load()) != tt.attempts || res.get("delivered") != tt.delivered || res.get("retried") != tt.retried || res.get("failed") != tt.failed {
				t.Errorf("calls %d, results %v; want %d calls, %d delivered, %d retried, %d failed",
					calls.Load(), res.m, tt.attempts, tt.delivered, tt.retried, tt.failed)
			}
			// One line an attempt, saying its outcome, with the attempt's
			// number and what the handler annotated it with.
			var lines []string
			for i, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				var line struct {
					Level, Outcome, Thing string
					Attempt               int
				}
				if err := json.Unmarshal([]byte(l), &line); err != nil {
					t.Fatalf("log line %q: %v", l, err)
				}
				if line.Attempt != i+1 || line.Thing != "payload" {
					t.Errorf("line %d is of attempt %d and thing %q: %s", i, line.Attempt, line.Thing, l)
				}
				lines = append(lines, line.Level+" "+line.Outcome)
			}
			if !slices.Equal(lines, tt.lines) {
				t.Errorf("log lines %q, want %q\n%s", lines, tt.lines, logs.String())
			}
			if n, _ := svc.Outbox().Pending(context.Background(), kind); n != 0 {
				t.Errorf("%d jobs still pending", n)
			}
		})
	}
}

// Notify starts an enqueued job at once, long before the next poll.
func TestNotifyStartsWorkAtOnce(t *testing.T) {
	svc, _ := fixture(t)
	got := make(chan time.Time, 1)
	r := jobs.New(svc.Outbox(), jobs.Options{Kind: kind, Poll: time.Hour}, func(ctx context.Context, j tokend.Job) error {
		got <- time.Now()
		return nil
	})
	start(t, r)
	time.Sleep(20 * time.Millisecond) // the workers are idle, waiting
	at := time.Now()
	enqueue(t, svc, "x")
	r.Notify()
	select {
	case done := <-got:
		if d := done.Sub(at); d > 2*time.Second {
			t.Errorf("the job started %v after Notify", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Notify did not start the job")
	}
}

// A runner stopped mid-attempt lets the attempt finish within the drain: a
// delivery the other side accepted as the stop came is recorded, not done
// again by the next runner.
func TestStopLetsTheAttemptInProgressFinish(t *testing.T) {
	svc, _ := fixture(t)
	started, finish := make(chan struct{}), make(chan struct{})
	res := &results{m: map[string]int{}}
	r := jobs.New(svc.Outbox(), jobs.Options{Kind: kind, Attempts: 1, Poll: 5 * time.Millisecond, Result: res.add},
		func(ctx context.Context, j tokend.Job) error {
			close(started)
			select {
			case <-finish:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	stop := start(t, r)
	enqueue(t, svc, "x")
	r.Notify()
	<-started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("the runner stopped without waiting for its attempt in progress")
	case <-time.After(50 * time.Millisecond):
	}
	close(finish)
	<-stopped
	if got := res.get("delivered"); got != 1 {
		t.Fatalf("the finished attempt was recorded %d times as delivered, want 1", got)
	}
	again := jobs.New(svc.Outbox(), jobs.Options{Kind: kind, Poll: 5 * time.Millisecond}, func(ctx context.Context, j tokend.Job) error {
		t.Errorf("job %d done again after it was delivered", j.ID)
		return nil
	})
	stopAgain := start(t, again)
	time.Sleep(50 * time.Millisecond)
	stopAgain()
}

// A runner stopped mid-attempt cuts it short after the drain and gives its
// job back untried: the next runner does it at once, and the interrupted
// attempt does not count.
func TestStopReleasesTheJob(t *testing.T) {
	svc, _ := fixture(t)
	started := make(chan struct{})
	r := jobs.New(svc.Outbox(), jobs.Options{Kind: kind, Attempts: 1, Poll: 5 * time.Millisecond, Drain: 20 * time.Millisecond}, func(ctx context.Context, j tokend.Job) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	stop := start(t, r)
	enqueue(t, svc, "x")
	r.Notify()
	<-started
	stop()

	res := &results{m: map[string]int{}}
	var attempt int
	next := jobs.New(svc.Outbox(), jobs.Options{Kind: kind, Attempts: 1, Poll: 5 * time.Millisecond, Result: res.add}, func(ctx context.Context, j tokend.Job) error {
		attempt = j.Attempts
		return nil
	})
	start(t, next)
	eventually(t, "the released job to be delivered", func() bool { return res.get("delivered") == 1 })
	if attempt != 1 {
		t.Errorf("the job came back at attempt %d, want 1 (the interrupted one not counted)", attempt)
	}
}

// A job claimed by a worker that died (its outcome never recorded) is done
// by another once the lease runs out, and not before.
func TestExpiredLeaseIsReclaimed(t *testing.T) {
	svc, _ := fixture(t)
	enqueue(t, svc, "x")
	now := time.Now()
	claimed, err := svc.Outbox().Claim(context.Background(), kind, now, time.Minute, 1)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	var clock atomic.Int64
	clock.Store(now.Add(30 * time.Second).UnixNano())
	res := &results{m: map[string]int{}}
	r := jobs.New(svc.Outbox(), jobs.Options{Kind: kind, Poll: 5 * time.Millisecond, Result: res.add,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }},
		func(ctx context.Context, j tokend.Job) error {
			if j.Attempts != 2 {
				t.Errorf("attempt %d, want 2", j.Attempts)
			}
			return nil
		})
	start(t, r)
	time.Sleep(50 * time.Millisecond)
	if res.get("delivered") != 0 {
		t.Fatal("a job was taken from under a live lease")
	}
	clock.Store(now.Add(61 * time.Second).UnixNano())
	eventually(t, "the job to be reclaimed after its lease", func() bool { return res.get("delivered") == 1 })
}
