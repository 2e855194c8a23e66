package tokend

import (
	"context"
	"sync"
	"time"
)

// JobState is where an outbox job stands.
type JobState string

// Job states. A pending job waits for its next attempt (or is being
// attempted, under a lease); delivered and failed are final.
const (
	JobPending   JobState = "pending"
	JobDelivered JobState = "delivered"
	JobFailed    JobState = "failed"
)

// Job is one piece of background work in the durable outbox: written in the
// same transaction as the change that calls for it, so that accepting the
// work and recording it can never come apart, then done by workers at least
// once. Payload is opaque to the store.
type Job struct {
	ID      int64
	Kind    string
	Payload []byte
	// OrderingKey, when set, orders the jobs that share it: one is claimed
	// only when no pending job of the same key was enqueued before it, so
	// that they are done one at a time, in the order they were enqueued.
	OrderingKey   string
	State         JobState
	Attempts      int // attempts started, including the current one
	NextAttemptAt time.Time
	LeaseUntil    *time.Time // while a worker holds the job
	LastError     string
	CreatedAt     time.Time
	FinishedAt    *time.Time
}

// OutboxTx is the outbox part of a transaction.
type OutboxTx interface {
	// EnqueueJob inserts j as pending and sets its ID; a zero NextAttemptAt
	// means at once.
	EnqueueJob(ctx context.Context, j *Job) error
	// ClaimJobs leases up to limit pending jobs of kind that are due at now and
	// not leased (or whose lease has run out, as after a crash), oldest due
	// first, until now+lease, counting an attempt for each, and none while a
	// pending job of its OrderingKey enqueued before it waits. Two
	// transactions never claim the same job.
	ClaimJobs(ctx context.Context, kind string, now time.Time, lease time.Duration, limit int) ([]Job, error)
	// FinishJob moves a job to a final state (JobDelivered or JobFailed).
	FinishJob(ctx context.Context, id int64, state JobState, at time.Time, lastError string) error
	// RetryJob makes a claimed job pending again, due at next, lease released.
	RetryJob(ctx context.Context, id int64, next time.Time, lastError string) error
	// ReleaseJob gives a claimed job back untried (its attempt not counted),
	// due at once: for a worker that stops before it could finish.
	ReleaseJob(ctx context.Context, id int64) error
	// UnclaimedJob reports whether a pending job of kind and ordering key
	// waits that no worker has attempted yet, and keeps any claim from
	// taking that job until the transaction ends (so that its worker sees
	// what the transaction wrote). Write transactions only.
	UnclaimedJob(ctx context.Context, kind, orderingKey string) (bool, error)
	// PendingJobs counts the pending jobs of kind.
	PendingJobs(ctx context.Context, kind string) (int, error)
	// DeleteJobsFinishedBefore deletes delivered and failed jobs finished before cutoff.
	DeleteJobsFinishedBefore(ctx context.Context, cutoff time.Time) (int64, error)
}

// jobRetention is how long finished jobs stay in the outbox for inspection.
const jobRetention = 7 * 24 * time.Hour

// Outbox hands jobs to workers, who bring their own clock: scheduling is
// theirs, and a test can drive it apart from the service's clock. Recording
// an outcome also runs the hooks of the job's kind in the same transaction,
// so that a kind's own records (an email's delivery state) never disagree
// with its jobs.
type Outbox struct {
	store Store
	mu    sync.RWMutex
	hooks map[string]jobHooks
}

// jobHooks keep a job kind's records in step with its jobs; each may be nil.
// They are given the error of the attempt (nil when it succeeded), so that
// a kind can tell its failures apart.
type jobHooks struct {
	retried  func(ctx context.Context, tx Tx, j *Job, cause error, at time.Time) error
	finished func(ctx context.Context, tx Tx, j *Job, state JobState, cause error, at time.Time) error
}

func newOutbox(store Store) *Outbox { return &Outbox{store: store, hooks: map[string]jobHooks{}} }

func (o *Outbox) hook(kind string, h jobHooks) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hooks[kind] = h
}

func (o *Outbox) hooksOf(kind string) jobHooks {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.hooks[kind]
}

// Outbox returns the outbox of the service's store.
func (s *Service) Outbox() *Outbox { return s.outbox }

// Claim leases up to limit jobs of kind due at now, for lease.
func (o *Outbox) Claim(ctx context.Context, kind string, now time.Time, lease time.Duration, limit int) ([]Job, error) {
	var jobs []Job
	err := o.store.Write(ctx, func(tx Tx) error {
		var err error
		jobs, err = tx.ClaimJobs(ctx, kind, now, lease, limit)
		return err
	})
	return jobs, err
}

// Delivered marks a job done at at.
func (o *Outbox) Delivered(ctx context.Context, j *Job, at time.Time) error {
	return o.finish(ctx, j, JobDelivered, at, nil)
}

// Failed marks a job as given up at at, because of cause.
func (o *Outbox) Failed(ctx context.Context, j *Job, at time.Time, cause error) error {
	return o.finish(ctx, j, JobFailed, at, cause)
}

func (o *Outbox) finish(ctx context.Context, j *Job, state JobState, at time.Time, cause error) error {
	h := o.hooksOf(j.Kind)
	return o.store.Write(ctx, func(tx Tx) error {
		if err := tx.FinishJob(ctx, j.ID, state, at, errorText(cause)); err != nil {
			return err
		}
		if h.finished != nil {
			return h.finished(ctx, tx, j, state, cause, at)
		}
		return nil
	})
}

// Retry makes a job due again at next; at is when the attempt failed,
// because of cause.
func (o *Outbox) Retry(ctx context.Context, j *Job, next, at time.Time, cause error) error {
	h := o.hooksOf(j.Kind)
	return o.store.Write(ctx, func(tx Tx) error {
		if err := tx.RetryJob(ctx, j.ID, next, errorText(cause)); err != nil {
			return err
		}
		if h.retried != nil {
			return h.retried(ctx, tx, j, cause, at)
		}
		return nil
	})
}

// Release gives a job back untried.
func (o *Outbox) Release(ctx context.Context, id int64) error {
	return o.store.Write(ctx, func(tx Tx) error { return tx.ReleaseJob(ctx, id) })
}

// Pending counts the pending jobs of kind.
func (o *Outbox) Pending(ctx context.Context, kind string) (int, error) {
	var n int
	err := o.store.Read(ctx, func(tx Tx) error {
		var err error
		n, err = tx.PendingJobs(ctx, kind)
		return err
	})
	return n, err
}
