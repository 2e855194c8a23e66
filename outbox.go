package tokend

import (
	"context"
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
	ID            int64
	Kind          string
	Payload       []byte
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
	// first, until now+lease, counting an attempt for each. Two transactions
	// never claim the same job.
	ClaimJobs(ctx context.Context, kind string, now time.Time, lease time.Duration, limit int) ([]Job, error)
	// FinishJob moves a job to a final state (JobDelivered or JobFailed).
	FinishJob(ctx context.Context, id int64, state JobState, at time.Time, lastError string) error
	// RetryJob makes a claimed job pending again, due at next, lease released.
	RetryJob(ctx context.Context, id int64, next time.Time, lastError string) error
	// ReleaseJob gives a claimed job back untried (its attempt not counted),
	// due at once: for a worker that stops before it could finish.
	ReleaseJob(ctx context.Context, id int64) error
	// PendingJobs counts the pending jobs of kind.
	PendingJobs(ctx context.Context, kind string) (int, error)
	// DeleteJobsFinishedBefore deletes delivered and failed jobs finished before cutoff.
	DeleteJobsFinishedBefore(ctx context.Context, cutoff time.Time) (int64, error)
}

// jobRetention is how long finished jobs stay in the outbox for inspection.
const jobRetention = 7 * 24 * time.Hour

// Outbox hands jobs to workers, who bring their own clock: scheduling is
// theirs, and a test can drive it apart from the service's clock.
type Outbox struct{ store Store }

// Outbox returns the outbox of the service's store.
func (s *Service) Outbox() *Outbox { return &Outbox{store: s.store} }

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
func (o *Outbox) Delivered(ctx context.Context, id int64, at time.Time) error {
	return o.store.Write(ctx, func(tx Tx) error { return tx.FinishJob(ctx, id, JobDelivered, at, "") })
}

// Failed marks a job as given up at at, with the last error.
func (o *Outbox) Failed(ctx context.Context, id int64, at time.Time, lastError string) error {
	return o.store.Write(ctx, func(tx Tx) error { return tx.FinishJob(ctx, id, JobFailed, at, lastError) })
}

// Retry makes a job due again at next.
func (o *Outbox) Retry(ctx context.Context, id int64, next time.Time, lastError string) error {
	return o.store.Write(ctx, func(tx Tx) error { return tx.RetryJob(ctx, id, next, lastError) })
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
