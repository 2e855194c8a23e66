// Package redis holds tokend's limits in Redis, so that they hold across
// every instance: the plan rate limits, the message allowances of sending
// and the failed-authentication throttle, each a GCRA decision made in one
// atomic script on Redis's clock.
//
// Redis being slow or down must not stall requests: every call is bounded by
// a short timeout, and after a few failures in a row a circuit breaker stops
// calling Redis for a while. Meanwhile the configured policy decides: "open"
// counts in this instance's memory (limits then hold per instance, as without
// Redis), "closed" refuses the requests whose limits cannot be checked.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/ratelimit"
)

// Policy is what happens to a request whose limits Redis cannot decide.
type Policy string

// Failure policies.
const (
	FailOpen   Policy = "open"   // count in this instance's memory
	FailClosed Policy = "closed" // refuse the request (503)
)

// Options configure Limits. Zero values take the defaults.
type Options struct {
	Policy  Policy        // default FailOpen
	Timeout time.Duration // bound of one call (default DefaultTimeout)
	// Failures in a row that open the circuit (default 3), and how long it
	// stays open before one call tries Redis again (default 2 s).
	TripAfter int
	OpenFor   time.Duration
	Logger    *slog.Logger
	// State is told of every change of the circuit: "closed" (Redis
	// answers) or "open" (it is skipped); may be nil.
	State func(state string)
	// Errors is told of every failed call; may be nil.
	Errors func()
}

// DefaultTimeout bounds a call to Redis unless Options say otherwise: a
// request waits no longer on a sick Redis.
const DefaultTimeout = 50 * time.Millisecond

// Limits are tokend.Limits in Redis, shared by every instance.
type Limits struct {
	client *redis.Client
	opts   Options
	local  *ratelimit.Limiter[string] // the open policy's fallback

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	open      bool
}

var _ tokend.Limits = (*Limits)(nil)

// period is the window every limit counts in: per minute.
const period = tokend.LimitPeriod

// New connects to the Redis at url (redis://[user:pass@]host:port[/db], or
// rediss:// for TLS) and checks that it answers.
func New(ctx context.Context, url string, opts Options) (*Limits, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	if opts.Policy == "" {
		opts.Policy = FailOpen
	}
	if opts.Policy != FailOpen && opts.Policy != FailClosed {
		return nil, fmt.Errorf("redis failure policy %q: want open or closed", opts.Policy)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.TripAfter <= 0 {
		opts.TripAfter = 3
	}
	if opts.OpenFor <= 0 {
		opts.OpenFor = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = opts.Timeout*4, opts.Timeout, opts.Timeout
	o.MaxRetries = 0 // a retry would double the time a request waits on a sick Redis
	// Connections kept open ahead of need: a burst after a quiet spell
	// should not wait on dials inside the call's timeout.
	o.PoolSize, o.MinIdleConns = 64, 16
	l := &Limits{client: redis.NewClient(o), opts: opts, local: ratelimit.New[string](period)}
	// Redis gets up to 5 s to answer at start (one call is bounded by the
	// short timeout, so it is asked again): it may be starting beside tokend,
	// or the machine may be busy.
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for err = l.client.Ping(pctx).Err(); err != nil; err = l.client.Ping(pctx).Err() {
		select {
		case <-pctx.Done():
			l.client.Close()
			return nil, fmt.Errorf("redis %s: %w", o.Addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := take.Load(pctx, l.client).Err(); err != nil {
		l.client.Close()
		return nil, fmt.Errorf("redis %s: load script: %w", o.Addr, err)
	}
	return l, nil
}

// Close closes the connections.
func (l *Limits) Close() error { return l.client.Close() }

// take is GCRA, as internal/ratelimit decides it, on Redis's clock: a key
// holds its theoretical arrival time in microseconds (written with %.0f: Lua
// would print so large a number in exponent form); a request of ARGV[3]
// units (one, or a send's recipients) conforms if after it the key is no more
// than one period ahead of now. It returns allowed, remaining, retry-after
// and reset (microseconds).
var take = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local n = tonumber(ARGV[3] or '1')
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nxt = tat + interval * n
local allow_at = nxt - period
if now < allow_at then
  local left = math.floor((period - (tat - now)) / interval)
  if left < 0 then left = 0 end
  return {0, left, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.floor((nxt - now) / 1000) + 1)
return {1, math.floor((period - (nxt - now)) / interval), 0, nxt - now}
`)

// refund gives ARGV[1] microseconds back (one interval per unit), never
// beyond a rested key.
var refund = redis.NewScript(`
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
tat = tat - tonumber(ARGV[1])
if tat > now then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1)
else
  redis.call('DEL', KEYS[1])
end
return 1
`)

const keyPrefix = "tokend:limit:"

// TakeN spends n units of key's rate at once, all or none; n above its
// Limit never conforms.
func (l *Limits) TakeN(ctx context.Context, key string, rate tokend.Rate, n int) (tokend.LimitDecision, error) {
	n = max(n, 1)
	limit, period := rate.Limit, rate.Per
	if limit <= 0 || n > limit {
		return tokend.LimitDecision{Limit: limit, RetryAfter: period, Reset: period}, nil
	}
	// Microseconds on Redis's clock: a limit over 60 million a minute
	// counts as 60 million.
	interval := max(period/time.Duration(limit), time.Microsecond)
	if !l.allowCall() {
		return l.fallback(key, rate, n)
	}
	cctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	res, err := take.Run(cctx, l.client, []string{keyPrefix + key}, interval.Microseconds(), period.Microseconds(), n).Int64Slice()
	cancel()
	if err == nil && len(res) != 4 {
		err = fmt.Errorf("unexpected script result %v", res)
	}
	if err != nil {
		if ctx.Err() != nil {
			return tokend.LimitDecision{}, ctx.Err() // the client left; not Redis's fault
		}
		l.failed(err)
		return l.fallback(key, rate, n)
	}
	l.succeeded()
	return tokend.LimitDecision{
		Allowed: res[0] == 1, Limit: limit, Remaining: int(min(res[1], int64(limit))),
		RetryAfter: time.Duration(res[2]) * time.Microsecond, Reset: time.Duration(res[3]) * time.Microsecond,
	}, nil
}

// RefundN gives back n units TakeN spent.
func (l *Limits) RefundN(ctx context.Context, key string, rate tokend.Rate, n int) error {
	if rate.Limit <= 0 || n <= 0 {
		return nil
	}
	interval := max(rate.Per/time.Duration(rate.Limit), time.Microsecond)
	if !l.allowCall() {
		l.local.RefundNPer(key, rate.Limit, n, rate.Per, time.Now())
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	if err := refund.Run(cctx, l.client, []string{keyPrefix + key}, interval.Microseconds()*int64(n)).Err(); err != nil && ctx.Err() == nil {
		l.failed(err)
		return err
	}
	l.succeeded()
	return nil
}

// errUnavailable is what the closed policy answers while Redis cannot decide.
var errUnavailable = errors.New("redis cannot decide the limit")

func (l *Limits) fallback(key string, rate tokend.Rate, n int) (tokend.LimitDecision, error) {
	if l.opts.Policy == FailClosed {
		return tokend.LimitDecision{}, errUnavailable
	}
	return tokend.LimitDecision(l.local.TakeNPer(key, rate.Limit, n, rate.Per, time.Now())), nil
}

// allowCall reports whether Redis may be called: the circuit is closed, or
// it has been open long enough for one call to try again.
func (l *Limits) allowCall() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.open {
		return true
	}
	if time.Now().Before(l.openUntil) {
		return false
	}
	l.openUntil = time.Now().Add(l.opts.OpenFor) // one probe now, the next after another wait
	return true
}

func (l *Limits) failed(err error) {
	if l.opts.Errors != nil {
		l.opts.Errors()
	}
	l.mu.Lock()
	l.failures++
	trip := !l.open && l.failures >= l.opts.TripAfter
	if trip {
		l.open, l.openUntil = true, time.Now().Add(l.opts.OpenFor)
	}
	l.mu.Unlock()
	if trip {
		l.opts.Logger.Error("redis is failing; limits now follow the failure policy", "policy", l.opts.Policy, "err", err)
		if l.opts.State != nil {
			l.opts.State("open")
		}
	}
}

func (l *Limits) succeeded() {
	l.mu.Lock()
	recovered := l.open
	l.failures, l.open = 0, false
	l.mu.Unlock()
	if recovered {
		l.opts.Logger.Info("redis answers again; limits hold across instances")
		if l.opts.State != nil {
			l.opts.State("closed")
		}
	}
}

// Sweep forgets rested keys of the open policy's local fallback.
func (l *Limits) Sweep(time.Time) { l.local.Sweep(time.Now()) }
