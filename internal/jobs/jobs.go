// Package jobs runs the workers that do the durable outbox's jobs of one
// kind: claim a due job under a lease, hand it to a handler, then mark it
// delivered, retry it later with capped exponential backoff, or give it up
// after a bounded number of attempts. A job whose worker dies mid-attempt is
// claimed again once its lease runs out, so every job is done at least once.
package jobs

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tokend/tokend"
)

// Handler does one job. An error wrapped with Permanent gives the job up at
// once; any other error is retried.
type Handler func(ctx context.Context, j tokend.Job) error

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying cannot fix.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool { return errors.As(err, new(permanentError)) }

// Results a Runner reports for each attempt.
const (
	ResultDelivered = "delivered" // done; final
	ResultRetried   = "retried"   // failed; tried again later
	ResultFailed    = "failed"    // given up; final
)

// The outcomes the Runner logs, one line an attempt: "delivered" (Info),
// "deferred" (Warn: failed, to be tried again) and "failed" (given up: Warn
// when the handler said retrying cannot help, as when a relay refuses an
// address; Error when the attempts or the time ran out, which calls for an
// operator).
const (
	outcomeDelivered = "delivered"
	outcomeDeferred  = "deferred"
	outcomeFailed    = "failed"
)

type annotationsKey struct{}

// annotations are the attributes a handler adds to its attempt's log lines.
type annotations struct {
	mu   sync.Mutex
	args []any
}

// Annotate adds key-value pairs, as slog takes them, to the log line of the
// attempt ctx belongs to: a handler names what its job is about (a message
// id, a domain) and the runner's line about the attempt's outcome carries
// them. Outside an attempt it does nothing.
func Annotate(ctx context.Context, args ...any) {
	if a, ok := ctx.Value(annotationsKey{}).(*annotations); ok {
		a.mu.Lock()
		a.args = append(a.args, args...)
		a.mu.Unlock()
	}
}

func (a *annotations) get() []any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.args
}

// Options configure a Runner. Zero values take the defaults.
type Options struct {
	Kind       string        // the jobs it does (required)
	Workers    int           // concurrent attempts (default 4)
	Attempts   int           // attempts before a job is given up (default 5)
	MaxAge     time.Duration // a job failing this long after it was created is given up (0: no bound)
	Backoff    time.Duration // wait after the first failed attempt, doubling after (default 1 s)
	MaxBackoff time.Duration // cap of the wait (default 5 min)
	Timeout    time.Duration // bound of one attempt (default 30 s)
	// Drain is how long an attempt in progress when Run's ctx ends may go
	// on before it is cut short and its job given back untried (default
	// 10 s; negative: at once). An attempt that ends within it is recorded
	// as usual, so a stop does not redo work that just succeeded.
	Drain  time.Duration
	Lease  time.Duration // how long a claim holds a job; must exceed Timeout (default Timeout + 15 s)
	Poll   time.Duration // how often idle workers look for due jobs (default 1 s)
	Logger *slog.Logger
	Now    func() time.Time // the clock; time.Now if nil
	// Result is told of each attempt's outcome (ResultDelivered, ...); may be nil.
	Result func(result string)
}

// errStopped is the cause of an attempt cut short by the runner's stop.
var errStopped = errors.New("the runner stopped")

// Runner does the jobs of one kind. Create it with New, run it with Run.
type Runner struct {
	outbox *tokend.Outbox
	opts   Options
	handle Handler
	wake   chan struct{}
}

// New returns a Runner doing opts.Kind jobs from outbox with h.
func New(outbox *tokend.Outbox, opts Options, h Handler) *Runner {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Drain == 0 {
		opts.Drain = 10 * time.Second
	}
	if opts.Lease <= opts.Timeout {
		opts.Lease = opts.Timeout + 15*time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Runner{outbox: outbox, opts: opts, handle: h, wake: make(chan struct{}, opts.Workers)}
}

// Notify tells idle workers that a job was just enqueued, so that it starts
// at once rather than at the next poll. It never blocks.
func (r *Runner) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx ends, then claims nothing more and waits for the
// attempts in progress, each for up to Options.Drain. An attempt cut short
// gives its job back untried, so the next start does it at once; nothing is
// lost if Run never gets to (a crash): the lease runs out and the job is
// claimed again.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range r.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ctx)
		}()
	}
	wg.Wait()
	return nil
}

func (r *Runner) work(ctx context.Context) {
	poll := time.NewTicker(r.opts.Poll)
	defer poll.Stop()
	for ctx.Err() == nil {
		jobs, err := r.outbox.Claim(ctx, r.opts.Kind, r.opts.Now(), r.opts.Lease, 1)
		if err != nil && ctx.Err() == nil {
			r.opts.Logger.Error("claiming outbox jobs", "kind", r.opts.Kind, "err", err)
		}
		if len(jobs) == 1 {
			r.attempt(ctx, jobs[0])
			continue // there may be more due
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-poll.C:
		}
	}
}

// attempt does one job once, logs its outcome and records it.
func (r *Runner) attempt(ctx context.Context, j tokend.Job) {
	ann := &annotations{}
	// The attempt outlives ctx by up to Drain: a delivery the other side
	// has just accepted must be recorded, not repeated after a restart.
	dctx, cut := context.WithCancelCause(context.WithValue(context.WithoutCancel(ctx), annotationsKey{}, ann))
	stopDrain := context.AfterFunc(ctx, func() {
		time.AfterFunc(max(r.opts.Drain, 0), func() { cut(errStopped) })
	})
	actx, cancel := context.WithTimeout(dctx, r.opts.Timeout)
	err := r.handle(actx, j)
	stopped := errors.Is(context.Cause(dctx), errStopped)
	stopDrain()
	cancel()
	cut(nil)
	log := r.opts.Logger.With("kind", j.Kind, "job_id", j.ID, "attempt", j.Attempts).With(ann.get()...)
	// Recording the outcome must survive the shutdown that may have cut the
	// attempt short, but not hang it.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer rcancel()
	switch {
	case err == nil:
		log.Info("outbox job done", "outcome", outcomeDelivered)
		r.record(rctx, log, r.outbox.Delivered(rctx, &j, r.opts.Now()), ResultDelivered)
	case stopped:
		if rerr := r.outbox.Release(rctx, j.ID); rerr != nil {
			log.Warn("could not give a job back at shutdown; it is retried when its lease runs out", "err", rerr)
		}
	case IsPermanent(err):
		log.Warn("outbox job failed; giving up: retrying cannot help", "outcome", outcomeFailed, "permanent", true, "err", err)
		r.record(rctx, log, r.outbox.Failed(rctx, &j, r.opts.Now(), err), ResultFailed)
	case j.Attempts >= r.opts.Attempts || r.opts.MaxAge > 0 && r.opts.Now().Sub(j.CreatedAt) >= r.opts.MaxAge:
		log.Error("outbox job failed; giving up: out of attempts or time", "outcome", outcomeFailed, "permanent", false,
			"age", r.opts.Now().Sub(j.CreatedAt), "err", err)
		r.record(rctx, log, r.outbox.Failed(rctx, &j, r.opts.Now(), err), ResultFailed)
	default:
		wait := r.backoff(j.Attempts)
		log.Warn("outbox job failed; retrying", "outcome", outcomeDeferred, "retry_in", wait, "err", err)
		r.record(rctx, log, r.outbox.Retry(rctx, &j, r.opts.Now().Add(wait), r.opts.Now(), err), ResultRetried)
	}
}

func (r *Runner) record(ctx context.Context, log *slog.Logger, err error, result string) {
	if err != nil {
		// The lease runs out and the job is attempted again: at least once.
		log.Error("recording an outbox job's outcome", "result", result, "err", err)
		return
	}
	if r.opts.Result != nil {
		r.opts.Result(result)
	}
}

// backoff is the wait after the attempt-th failure: Backoff doubling, capped
// at MaxBackoff, with up to 20% jitter so that jobs that failed together do
// not retry together.
func (r *Runner) backoff(attempt int) time.Duration {
	d := r.opts.Backoff
	for i := 1; i < attempt && d < r.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.opts.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}
