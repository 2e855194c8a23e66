package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

func enqueue(t *testing.T, s tokend.Store, kind string, due time.Time) *tokend.Job {
	t.Helper()
	j := &tokend.Job{Kind: kind, Payload: []byte(`{"n":1}`), NextAttemptAt: due, CreatedAt: t0}
	write(t, s, func(tx tokend.Tx) error { return tx.EnqueueJob(context.Background(), j) })
	if j.ID == 0 || j.State != tokend.JobPending {
		t.Fatalf("enqueued job = %+v", j)
	}
	return j
}

func claim(t *testing.T, s tokend.Store, kind string, now time.Time, limit int) []tokend.Job {
	t.Helper()
	var jobs []tokend.Job
	write(t, s, func(tx tokend.Tx) error {
		var err error
		jobs, err = tx.ClaimJobs(context.Background(), kind, now, 30*time.Second, limit)
		return err
	})
	return jobs
}

func ids(jobs []tokend.Job) []int64 {
	out := make([]int64, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// Claims respect the due time, the kind and leases; a lease that ran out
// makes a job claimable again, counting another attempt.
func testOutboxClaims(t *testing.T, s tokend.Store) {
	a := enqueue(t, s, "mail", t0)
	b := enqueue(t, s, "mail", t0.Add(time.Minute))
	enqueue(t, s, "other", t0)

	got := claim(t, s, "mail", t0, 10)
	if len(got) != 1 || got[0].ID != a.ID || got[0].Attempts != 1 || string(got[0].Payload) != `{"n":1}` ||
		got[0].LeaseUntil == nil || !got[0].LeaseUntil.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("claim at t0 = %+v, want only job %d, attempt 1, leased 30 s", got, a.ID)
	}
	if again := claim(t, s, "mail", t0.Add(10*time.Second), 10); len(again) != 0 {
		t.Errorf("a leased job was claimed again: %v", ids(again))
	}
	// After the lease: the first job again (attempt 2), and the second, now due.
	got = claim(t, s, "mail", t0.Add(time.Minute), 10)
	if len(got) != 2 || got[0].ID != a.ID || got[0].Attempts != 2 || got[1].ID != b.ID {
		t.Fatalf("claim after the lease = %+v, want jobs %d (attempt 2) and %d", got, a.ID, b.ID)
	}
	write(t, s, func(tx tokend.Tx) error {
		n, err := tx.PendingJobs(context.Background(), "mail")
		if n != 2 {
			t.Errorf("PendingJobs = %d, want 2", n)
		}
		return err
	})
}

// Retry makes a job due later; Release gives it back untried; Finish ends it
// for good, and only a pending job can be finished.
func testOutboxOutcomes(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	j := enqueue(t, s, "mail", t0)
	claim(t, s, "mail", t0, 1)
	write(t, s, func(tx tokend.Tx) error { return tx.RetryJob(ctx, j.ID, t0.Add(time.Hour), "relay said 451") })
	if got := claim(t, s, "mail", t0.Add(59*time.Minute), 1); len(got) != 0 {
		t.Fatalf("a job retried for later was claimed early: %v", ids(got))
	}
	got := claim(t, s, "mail", t0.Add(time.Hour), 1)
	if len(got) != 1 || got[0].Attempts != 2 || got[0].LastError != "relay said 451" {
		t.Fatalf("claim after the retry time = %+v", got)
	}
	write(t, s, func(tx tokend.Tx) error { return tx.ReleaseJob(ctx, j.ID) })
	got = claim(t, s, "mail", t0.Add(time.Hour), 1)
	if len(got) != 1 || got[0].Attempts != 2 {
		t.Fatalf("after a release the job is claimable at once with its attempt not counted; got %+v", got)
	}
	write(t, s, func(tx tokend.Tx) error { return tx.FinishJob(ctx, j.ID, tokend.JobDelivered, t0.Add(time.Hour), "") })
	if got := claim(t, s, "mail", t0.Add(48*time.Hour), 10); len(got) != 0 {
		t.Errorf("a delivered job was claimed: %v", ids(got))
	}
	err := s.Write(ctx, func(tx tokend.Tx) error { return tx.FinishJob(ctx, j.ID, tokend.JobFailed, t0, "late") })
	if tokend.ErrorCode(err) != tokend.ENOTFOUND {
		t.Errorf("finishing a finished job: %v, want ENOTFOUND", err)
	}
	f := enqueue(t, s, "mail", t0)
	claim(t, s, "mail", t0, 1)
	write(t, s, func(tx tokend.Tx) error {
		return tx.FinishJob(ctx, f.ID, tokend.JobFailed, t0.Add(2*time.Hour), "gave up")
	})

	// Finished jobs go after the retention cutoff; pending ones never.
	p := enqueue(t, s, "mail", t0.Add(time.Hour*1000))
	write(t, s, func(tx tokend.Tx) error {
		n, err := tx.DeleteJobsFinishedBefore(ctx, t0.Add(90*time.Minute))
		if n != 1 {
			t.Errorf("deleted %d finished jobs before the cutoff, want 1 (the delivered one)", n)
		}
		return err
	})
	write(t, s, func(tx tokend.Tx) error {
		n, err := tx.DeleteJobsFinishedBefore(ctx, t0.Add(10000*time.Hour))
		if n != 1 {
			t.Errorf("deleted %d, want 1 (the failed one)", n)
		}
		pending, _ := tx.PendingJobs(ctx, "mail")
		if pending != 1 {
			t.Errorf("pending job %d was deleted", p.ID)
		}
		return err
	})
}

// Concurrent claimers never get the same job.
func testOutboxConcurrentClaims(t *testing.T, s tokend.Store) {
	const n = 40
	for i := 0; i < n; i++ {
		enqueue(t, s, "mail", t0)
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var jobs []tokend.Job
				err := s.Write(context.Background(), func(tx tokend.Tx) error {
					var err error
					jobs, err = tx.ClaimJobs(context.Background(), "mail", t0, time.Minute, 3)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					seen[j.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d distinct jobs claimed, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("job %d claimed %d times", id, c)
		}
	}
}
