package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tokend/tokend"
)

// EnqueueJob inserts j as pending and sets its ID.
func (x *Tx) EnqueueJob(ctx context.Context, j *tokend.Job) error {
	err := x.q.QueryRowContext(ctx,
		`INSERT INTO outbox (kind, payload, next_attempt_at, created_at, ordering_key) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		j.Kind, j.Payload, micros(j.NextAttemptAt), micros(j.CreatedAt), sql.NullString{String: j.OrderingKey, Valid: j.OrderingKey != ""}).Scan(&j.ID)
	if err != nil {
		return fmt.Errorf("enqueue job: %w", err)
	}
	j.State = tokend.JobPending
	return nil
}

// UnclaimedJob reports whether a pending job of kind and key waits that no
// worker has attempted yet. Where claims run beside writes, it locks that
// job until the transaction ends: a claim skips it meanwhile, so the worker
// that takes it sees what this transaction added for it.
func (x *Tx) UnclaimedJob(ctx context.Context, kind, orderingKey string) (bool, error) {
	var id int64
	err := x.q.QueryRowContext(ctx, `SELECT id FROM outbox WHERE ordering_key = ? AND kind = ? AND state = 'pending' AND attempts = 0
		ORDER BY id LIMIT 1`+x.d.RowLock, orderingKey, kind).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("unclaimed job: %w", err)
	}
	return true, nil
}

// ClaimJobs leases due jobs. Under SQLite's single writer the select and the
// update cannot interleave with another claim; elsewhere the dialect's claim
// lock (FOR UPDATE SKIP LOCKED) keeps concurrent claims apart.
func (x *Tx) ClaimJobs(ctx context.Context, kind string, now time.Time, lease time.Duration, limit int) ([]tokend.Job, error) {
	rows, err := x.q.QueryContext(ctx,
		`UPDATE outbox SET lease_until = ?, attempts = attempts + 1
		  WHERE id IN (SELECT o.id FROM outbox o
		                WHERE o.kind = ? AND o.state = 'pending' AND o.next_attempt_at <= ?
		                  AND (o.lease_until IS NULL OR o.lease_until <= ?)
		                  AND (o.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM outbox p
		                        WHERE p.ordering_key = o.ordering_key AND p.state = 'pending' AND p.id < o.id))
		                ORDER BY o.next_attempt_at, o.id LIMIT ?`+x.d.ClaimLock+`)
		 RETURNING id, kind, payload, attempts, next_attempt_at, lease_until, last_error, created_at, ordering_key`,
		micros(now.Add(lease)), kind, micros(now), micros(now), limit)
	if err != nil {
		return nil, fmt.Errorf("claim jobs: %w", err)
	}
	defer rows.Close()
	var out []tokend.Job
	for rows.Next() {
		j := tokend.Job{State: tokend.JobPending}
		var next, created int64
		var leaseUntil sql.NullInt64
		var key sql.NullString
		if err := rows.Scan(&j.ID, &j.Kind, &j.Payload, &j.Attempts, &next, &leaseUntil, &j.LastError, &created, &key); err != nil {
			return nil, fmt.Errorf("claim jobs: %w", err)
		}
		j.NextAttemptAt, j.LeaseUntil, j.CreatedAt, j.OrderingKey = fromMicros(next), timePtr(leaseUntil), fromMicros(created), key.String
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim jobs: %w", err)
	}
	// RETURNING gives rows in no particular order; the contract is oldest due first.
	slices.SortFunc(out, func(a, b tokend.Job) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// FinishJob moves a pending job to a final state.
func (x *Tx) FinishJob(ctx context.Context, id int64, state tokend.JobState, at time.Time, lastError string) error {
	if state != tokend.JobDelivered && state != tokend.JobFailed {
		return fmt.Errorf("finish job %d: %q is not a final state", id, state)
	}
	res, err := x.q.ExecContext(ctx,
		`UPDATE outbox SET state = ?, finished_at = ?, lease_until = NULL, last_error = ? WHERE id = ? AND state = 'pending'`,
		string(state), micros(at), lastError, id)
	return expectOne(res, err, "pending job")
}

// RetryJob makes a claimed job due again at next.
func (x *Tx) RetryJob(ctx context.Context, id int64, next time.Time, lastError string) error {
	res, err := x.q.ExecContext(ctx,
		`UPDATE outbox SET next_attempt_at = ?, lease_until = NULL, last_error = ? WHERE id = ? AND state = 'pending'`,
		micros(next), lastError, id)
	return expectOne(res, err, "pending job")
}

// ReleaseJob gives a claimed job back untried.
func (x *Tx) ReleaseJob(ctx context.Context, id int64) error {
	res, err := x.q.ExecContext(ctx,
		`UPDATE outbox SET lease_until = NULL, attempts = `+x.d.Greatest+`(attempts - 1, 0) WHERE id = ? AND state = 'pending'`, id)
	return expectOne(res, err, "pending job")
}

// PendingJobs counts the pending jobs of kind.
func (x *Tx) PendingJobs(ctx context.Context, kind string) (int, error) {
	var n int
	if err := x.q.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE kind = ? AND state = 'pending'`, kind).Scan(&n); err != nil {
		return 0, fmt.Errorf("pending jobs: %w", err)
	}
	return n, nil
}

// DeleteJobsFinishedBefore deletes final jobs finished before cutoff.
func (x *Tx) DeleteJobsFinishedBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := x.q.ExecContext(ctx, `DELETE FROM outbox WHERE state <> 'pending' AND finished_at < ?`, micros(cutoff))
	if err != nil {
		return 0, fmt.Errorf("delete finished jobs: %w", err)
	}
	return res.RowsAffected()
}
