// Package middleware authenticates HTTP requests against a tokend, for
// services that accept the tokens tokend issues.
//
// An Authenticator asks tokend (POST /api/verify) the first time it sees a
// token and then answers from memory. It follows the account's change
// stream (GET /api/auth_changes), so a token deleted, reset past its grace,
// or stripped of a permission is refused as soon as the event arrives, in a
// few milliseconds. While the stream is down nothing is answered from
// memory: every request asks tokend, until the stream is back.
//
//	c, _ := client.New("http://tokend:8080", os.Getenv("TOKEND_TOKEN"))
//	auth, _ := middleware.New(c, middleware.Options{})
//	go auth.Run(ctx) // follows the change stream and reports usage until ctx ends (end it after the server's Shutdown)
//	mux.Handle("GET /reports", auth.Require(client.MustPermission("project:3:viewer"))(reports))
//
// and in the handler:
//
//	id, _ := middleware.FromContext(r.Context())
//
// Every request it admits counts in the token's usage and against its
// limits in tokend (its own rate limit, its quota, its account's plan
// limit), however many processes admit requests of the same token: a
// request answered from memory spends a lease of requests tokend has
// already charged, and usage goes to tokend in reports every
// Options.ReportInterval (see ledger.go for how, and for the error bound).
// When tokend cannot be reached, requests that need it (a token not in
// memory, a lease to top up) are refused 503 unavailable: the middleware
// fails closed.
package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/client"
)

// Identity is who a request authenticated as. Treat it as read-only.
type Identity struct {
	TokenID     int64
	AccountID   int64
	Name        string
	Environment string // "live" or "test"
	ExpiresAt   *time.Time
	Permissions []client.Permission
}

type identityKey struct{}

// FromContext returns the identity the middleware put in a request's context.
func FromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok
}

// WithIdentity returns ctx carrying id, as the middleware passes it on.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// Error is why a request was refused: Status is the HTTP status and Code
// one of missing_api_key, invalid_api_key, expired_api_key,
// insufficient_permissions, rate_limited, auth_throttled, unavailable.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
	// Limit, Remaining and Reset describe the plan limit that refused a
	// request (Code rate_limited), for the X-RateLimit-* headers; Limit
	// is 0 otherwise.
	Limit, Remaining int
	Reset            time.Duration
}

func (e *Error) Error() string { return e.Message }

// Options configure an Authenticator. Zero values take the defaults.
type Options struct {
	// Prefix is the prefix of the tokend's token values (default "tk"): values
	// that are not well-formed tokens are refused without asking tokend.
	Prefix string
	// AuthFailureLimit is how many failed authentications a client address
	// may make per minute before it is refused with 429 auth_throttled
	// without asking tokend (default 20).
	AuthFailureLimit int
	// ClientAddr returns the client address a request came from, for that
	// throttle (default: the host of RemoteAddr). Behind a proxy, read the
	// address the proxy forwards.
	ClientAddr func(r *http.Request) string
	// WriteError answers a refused request (default: JSON
	// {"error", "status", "code"}, with Retry-After on 429 and 503).
	WriteError func(w http.ResponseWriter, r *http.Request, e *Error)
	// TTL bounds how long a verified token is answered from memory before
	// tokend is asked again, whatever the change stream says (default 5 min).
	TTL time.Duration
	// ReportInterval is how often usage is reported to tokend and the
	// leases of busy tokens topped up (default DefaultReportInterval).
	ReportInterval time.Duration
	Logger         *slog.Logger     // default: discard
	Now            func() time.Time // the clock; time.Now if nil
}

// Authenticator is the middleware. Create it with New, run Run beside the
// server, and wrap handlers with Require or RequireFunc.
type Authenticator struct {
	c      *client.Client
	opts   Options
	format apikey.Format
	cache  *cache
	live   atomic.Bool         // the change stream is up: memory may be trusted
	limits *tokend.LocalLimits // the failed-authentication throttle
	gate   *tokend.Gate[flight]
	ledger *ledger

	loggedUpstream atomic.Int64 // unix seconds of the last upstream failure logged
}

// New returns an Authenticator that verifies through c, a client holding a
// service token of the account whose tokens it accepts (at least viewer on
// the account).
func New(c *client.Client, opts Options) (*Authenticator, error) {
	if opts.Prefix == "" {
		opts.Prefix = apikey.DefaultPrefix
	}
	format, err := apikey.NewFormat(opts.Prefix)
	if err != nil {
		return nil, err
	}
	if opts.AuthFailureLimit <= 0 {
		opts.AuthFailureLimit = 20
	}
	if opts.ClientAddr == nil {
		opts.ClientAddr = remoteHost
	}
	if opts.WriteError == nil {
		opts.WriteError = WriteJSONError
	}
	if opts.TTL <= 0 {
		opts.TTL = 5 * time.Minute
	}
	if opts.ReportInterval <= 0 {
		opts.ReportInterval = DefaultReportInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	limits := tokend.NewLocalLimits(opts.Now)
	throttle := &tokend.Throttle{Limits: limits, Limit: opts.AuthFailureLimit}
	a := &Authenticator{c: c, opts: opts, format: format, cache: newCache(), limits: limits,
		gate: tokend.NewGate[flight](throttle)}
	a.ledger = newLedger(c, opts.ReportInterval, opts.Now, func(h *[32]byte) bool {
		_, ok, _ := a.cache.Get(h)
		return ok
	}, a.logUpstream)
	return a, nil
}

// Require returns middleware that lets a request through when it carries a
// token of the account holding every permission in required (any valid
// token when there are none), with its Identity in the request's context.
func (a *Authenticator) Require(required ...client.Permission) func(http.Handler) http.Handler {
	key := permsKey(required)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a.serve(w, r, next, required, key)
		})
	}
}

// RequireFunc is Require with the permissions decided per request (from
// path values, say). An error from required answers 403.
func (a *Authenticator) RequireFunc(required func(r *http.Request) ([]client.Permission, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			perms, err := required(r)
			if err != nil {
				a.opts.WriteError(w, r, &Error{Status: http.StatusForbidden, Code: "insufficient_permissions", Message: err.Error()})
				return
			}
			a.serve(w, r, next, perms, permsKey(perms))
		})
	}
}

func (a *Authenticator) serve(w http.ResponseWriter, r *http.Request, next http.Handler, required []client.Permission, key string) {
	id, err := a.authenticate(r, required, key)
	if err != nil {
		a.opts.WriteError(w, r, err)
		return
	}
	next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
}

// Authenticate decides whether r may pass with the permissions in required,
// as Require does, without serving it.
func (a *Authenticator) Authenticate(r *http.Request, required ...client.Permission) (*Identity, *Error) {
	return a.authenticate(r, required, permsKey(required))
}

// WriteError answers a refused request as the Authenticator's options say.
func (a *Authenticator) WriteError(w http.ResponseWriter, r *http.Request, e *Error) {
	a.opts.WriteError(w, r, e)
}

// Refusals.
var (
	errInvalid     = &Error{Status: http.StatusUnauthorized, Code: "invalid_api_key", Message: "Incorrect API token"}
	errExpired     = &Error{Status: http.StatusUnauthorized, Code: "expired_api_key", Message: "API token has expired"}
	errIPNotAllowd = &Error{Status: http.StatusForbidden, Code: tokend.ReasonIPNotAllowed, Message: tokend.ErrIPNotAllowed.Message}
	errLacking     = &Error{Status: http.StatusForbidden, Code: "insufficient_permissions", Message: "This token lacks a permission this request requires"}
	errUpstream    = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "Tokens cannot be verified right now; retry in a moment", RetryAfter: time.Second}
)

func (a *Authenticator) authenticate(r *http.Request, required []client.Permission, key string) (*Identity, *Error) {
	// Canonical keys, read without canonicalizing on every request.
	value, err := tokend.Credential{APIToken: r.Header["Api-Token"], Authorization: r.Header["Authorization"]}.Value()
	if err != nil {
		return nil, refusalOf(err)
	}
	now := a.opts.Now()
	h := apikey.Hash(value)
	var addr string // the client's, read when needed: most tokens allow any
	if a.live.Load() {
		e, _, unknown := a.cache.Get(&h)
		switch {
		case unknown:
			return nil, a.failed(r, a.opts.ClientAddr(r), errInvalid)
		case e != nil:
			if len(e.guards.AllowedIPs) > 0 {
				addr = a.opts.ClientAddr(r)
			}
			switch err := e.guards.Admit(now, addr); {
			case err == tokend.ErrIPNotAllowed:
				return nil, a.failed(r, addr, errIPNotAllowd)
			case err != nil:
				return nil, refusalOf(err)
			}
			if now.Sub(e.fetched) < a.opts.TTL && e.grants(key) {
				return e.id, a.ledger.admit(r.Context(), e.ledger)
			}
		}
	}
	if addr == "" {
		addr = a.opts.ClientAddr(r)
	}
	// Only a value tokend has verified is cached: anything else is checked
	// for its shape before tokend is asked.
	if _, err := a.format.Parse(value); err != nil {
		return nil, a.failed(r, addr, errInvalid)
	}
	return a.ask(r, value, &h, addr, required, key)
}

// ask verifies with tokend through the gate, as tokend itself looks up a
// token it has not seen: one failure of the client address's budget is
// reserved first and given back unless tokend says the token is unknown,
// expired or not allowed from addr; concurrent requests of one token,
// address and permission set share one verification and one reservation.
// The verification spends the request that made it in tokend; the others
// that joined it spend the token's lease.
func (a *Authenticator) ask(r *http.Request, value string, h *[32]byte, addr string, required []client.Permission, key string) (*Identity, *Error) {
	mine := new(byte)
	f, d, err := a.gate.Lookup(r.Context(), string(h[:])+"\x00"+addr+"\x00"+key, addr, func(ctx context.Context) (flight, bool) {
		// What the answer may be cached against is read here, before tokend
		// is asked, and shared by every request of the flight: one that
		// joins late must not vouch for an answer older than it.
		f := flight{gen: a.cache.Gen(), at: a.opts.Now(), leader: mine}
		f.v, f.err = a.c.VerifyFrom(ctx, value, addr, required...)
		return f, f.err == nil && (f.v.Code == client.CodeNotFound || f.v.Code == client.CodeExpired || f.v.Code == client.CodeIPNotAllowed)
	})
	if err != nil {
		return nil, throttled(d)
	}
	if f.err != nil {
		a.logUpstream(f.err)
		return nil, errUpstream
	}
	gen := f.gen
	v := f.v
	switch v.Code {
	case client.CodeNotFound:
		if a.live.Load() {
			a.cache.PutUnknown(h, gen)
		}
		return nil, errInvalid
	case client.CodeExpired:
		return nil, errExpired
	case client.CodeIPNotAllowed:
		return nil, errIPNotAllowd
	}
	e := &entry{id: identityOf(v), fetched: f.at, granted: map[string]struct{}{}, guards: guardsOf(v),
		ledger: a.ledger.get(h)}
	e.ledger.exact.Store(e.guards.Quota != nil)
	if v.RateLimit != nil {
		e.ledger.room.Store(int64(v.RateLimit.Remaining))
	}
	// tokend counted the verifying request in the token's usage (but one
	// over its quota); the ones that joined it count here.
	leader := f.leader == mine
	switch v.Code {
	case client.CodeRateLimited:
		if !leader {
			e.ledger.limited.Add(1)
		}
		return nil, rateLimited(v)
	case client.CodeUsageExceeded:
		e.ledger.limited.Add(1)
		return nil, quotaRefusal(v.Quota, a.opts.Now())
	case client.CodeValid:
		e.grant(key)
		e.ledger.lift() // tokend admits the token again, whatever it refused before
	case client.CodeInsufficientPermissions:
	default:
		a.opts.Logger.Error("tokend answered an unknown verification code", "code", v.Code)
		return nil, errUpstream
	}
	if a.live.Load() {
		if cached := a.cache.put(h, e, gen, a.opts.TTL); cached != nil && cached != e && v.Code == client.CodeValid {
			cached.grant(key)
		}
	}
	if v.Code == client.CodeInsufficientPermissions {
		if !leader {
			e.ledger.lacking.Add(1)
		}
		return nil, errLacking
	}
	if leader {
		return e.id, nil // tokend has charged this request
	}
	return e.id, a.ledger.admit(r.Context(), e.ledger)
}

// errQuotaMessage refuses a request of a token whose quota is used up,
// when tokend's answer did not say what the quota is.
const errQuotaMessage = "This token's quota is used up"

// quotaRefusal is the refusal of a request of a token whose quota is used
// up, as tokend answers it: its message names the quota and when it
// refills, from q (tokend's answer), and Retry-After is until then (at
// least a second).
func quotaRefusal(q *client.Quota, now time.Time) *Error {
	e := &Error{Status: http.StatusTooManyRequests, Code: tokend.ReasonQuotaExceeded, Message: errQuotaMessage, RetryAfter: time.Second}
	if q == nil || q.ResetsAt == nil {
		return e
	}
	e.Message = quotaMessage(q.Limit, q.Unit, q.Period, *q.ResetsAt)
	e.RetryAfter = max(e.RetryAfter, q.ResetsAt.Sub(now))
	return e
}

// quotaMessage is tokend's message for a quota used up (its
// errQuotaExceeded): "This token's quota of 2 requests a day is used up;
// it refills at 2026-12-07T00:00:00Z".
func quotaMessage(limit int64, unit, period string, resetsAt time.Time) string {
	amount := strconv.FormatInt(limit, 10) + " " + unit
	if limit == 1 {
		amount = "1 " + strings.TrimSuffix(unit, "s")
	}
	return "This token's quota of " + amount + " a " + period + " is used up; it refills at " + resetsAt.UTC().Format(time.RFC3339)
}

// rateLimited is the refusal of a request tokend answered RATE_LIMITED.
func rateLimited(v *client.Verification) *Error {
	own := v.Reason == tokend.ReasonTokenRateLimited && v.TokenRateLimit != nil
	retry := time.Second
	switch {
	case own && v.TokenRateLimit.Limit > 0:
		retry = max(retry, time.Duration(math.Ceil(float64(v.TokenRateLimit.PeriodSeconds)/float64(v.TokenRateLimit.Limit)))*time.Second)
	case !own && v.RateLimit != nil && v.RateLimit.Limit > 0:
		retry = max(retry, time.Duration(math.Ceil(60/float64(v.RateLimit.Limit)))*time.Second)
	}
	return limitRefusal(own, v.RateLimit, retry)
}

// limitRefusal is the refusal of a request over the token's own rate limit
// (own) or its plan limit, whose state rl gives the X-RateLimit headers.
func limitRefusal(own bool, rl *client.RateLimit, retry time.Duration) *Error {
	if own {
		return &Error{Status: http.StatusTooManyRequests, Code: tokend.ReasonTokenRateLimited, Message: tokend.ErrTokenRateLimited.Message, RetryAfter: retry}
	}
	e := &Error{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: tokend.ErrRateLimited.Message, RetryAfter: retry}
	if rl != nil {
		e.Limit, e.Remaining, e.Reset = rl.Limit, rl.Remaining, time.Duration(rl.Reset)*time.Second
	}
	return e
}

// guardsOf turns the guards in tokend's answer into the domain's.
func guardsOf(v *client.Verification) tokend.Guards {
	g := tokend.Guards{ExpiresAt: v.ExpiresAt}
	for _, s := range v.AllowedIPs {
		if p, err := tokend.ParseAllowedIP(s); err == nil {
			g.AllowedIPs = append(g.AllowedIPs, p)
		}
	}
	if len(v.AllowedIPs) > 0 && len(g.AllowedIPs) == 0 {
		// Nothing tokend listed could be read: allow no address rather than any.
		g.AllowedIPs = []netip.Prefix{netip.PrefixFrom(netip.IPv6Unspecified(), 128)}
	}
	if r := v.TokenRateLimit; r != nil && r.Limit > 0 && r.PeriodSeconds > 0 {
		g.RateLimit = &tokend.Rate{Limit: r.Limit, Per: time.Duration(r.PeriodSeconds) * time.Second}
	}
	if q := v.Quota; q != nil {
		g.Quota = &tokend.Quota{Limit: q.Limit, Period: tokend.QuotaPeriod(q.Period), Unit: tokend.QuotaUnit(q.Unit)}
	}
	return g
}

// flight is the outcome of one verification shared by concurrent requests.
type flight struct {
	v      *client.Verification
	err    error     // tokend could not be asked
	gen    uint64    // the cache generation before tokend was asked
	at     time.Time // when tokend was asked
	leader *byte     // the request that asked
}

// logUpstream logs a failure to reach tokend, at most once a second.
func (a *Authenticator) logUpstream(err error) {
	now := time.Now().Unix()
	if last := a.loggedUpstream.Load(); now > last && a.loggedUpstream.CompareAndSwap(last, now) {
		a.opts.Logger.Error("verifying a token with tokend (logged at most once a second)", "err", err)
	}
}

// failed charges one failure to the client address addr and returns
// refusal, or auth_throttled once the address's budget is spent.
func (a *Authenticator) failed(r *http.Request, addr string, refusal *Error) *Error {
	if d, err := a.gate.Throttle().Fail(r.Context(), addr); err != nil {
		return throttled(d)
	}
	return refusal
}

// refusalOf is the refusal of a request whose credential or token's guards
// tokend's rules refused (a tokend.Error of EUNAUTHORIZED).
func refusalOf(err error) *Error {
	var te *tokend.Error
	if !errors.As(err, &te) {
		return errInvalid
	}
	return &Error{Status: http.StatusUnauthorized, Code: te.Reason, Message: te.Message}
}

// throttled is the refusal of a client address whose failure budget is spent.
func throttled(d tokend.LimitDecision) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: "auth_throttled",
		Message: "Too many failed authentications from your address; retry later", RetryAfter: d.RetryAfter}
}

// Live reports whether the change stream is up, so that verified tokens are
// answered from memory.
func (a *Authenticator) Live() bool { return a.live.Load() }

// CachedTokens is how many verified tokens are held in memory.
func (a *Authenticator) CachedTokens() int { return a.cache.Len() }

// Run follows the account's change stream until ctx ends, reconnecting
// with capped backoff when it is lost; each loss forgets everything cached,
// and until the stream is back every request asks tokend. Beside it, it
// reports usage and tops up leases every Options.ReportInterval, and about
// once a minute forgets the failure budgets of clients that have rested,
// so that memory stays bounded by the clients of the last minute. It
// returns nil once ctx is done, after a last report of what was admitted
// (end it after the server's Shutdown, so that the last requests are in
// it). Without Run, only requests that tokend verifies pass: a request
// that would need a lease is refused 503 unavailable.
func (a *Authenticator) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				a.limits.Sweep(a.opts.Now())
			}
		}
	})
	g.Go(func() error { return a.followStream(ctx) })
	g.Go(func() error { return a.ledger.run(ctx) })
	return g.Wait()
}

func (a *Authenticator) followStream(ctx context.Context) error {
	backoff := minBackoff
	for {
		start := time.Now()
		err := a.follow(ctx)
		a.lose()
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 30*time.Second {
			backoff = minBackoff
		}
		a.opts.Logger.Warn("lost tokend's change stream; asking tokend for every request until it is back", "err", err, "retry_in", backoff.String())
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func (a *Authenticator) follow(ctx context.Context) error {
	s, err := a.c.AuthChanges(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		ev, err := s.Next()
		if err != nil {
			return err
		}
		now := a.opts.Now()
		switch ev.Kind {
		case client.EventReady:
			a.cache.Flush()
			a.ledger.liftAll()
			a.live.Store(true)
			a.opts.Logger.Info("following tokend's change stream")
		case client.EventToken:
			a.cache.evictToken(ev.TokenID, now)
		case client.EventAccount:
			a.cache.evictAccount(ev.AccountID, now)
		case client.EventFlush:
			a.cache.Flush()
		}
		if ev.Kind != client.EventReady {
			// A change may lift a refusal (a quota raised, a plan upgraded):
			// the next request asks tokend again.
			a.ledger.liftAll()
		}
	}
}

// lose stops trusting memory until the stream is back.
func (a *Authenticator) lose() {
	a.live.Store(false)
	a.cache.Flush()
}

// permsKey names a set of permissions, whatever their order.
func permsKey(perms []client.Permission) string {
	if len(perms) == 0 {
		return ""
	}
	keys := make([]string, len(perms))
	for i, p := range perms {
		keys[i] = p.ResourceType + ":" + strconv.FormatInt(p.ResourceID, 10) + ":" + strconv.Itoa(p.AccessLevel)
	}
	slices.Sort(keys)
	return strings.Join(keys, ",")
}

// remoteHost is the host part of r.RemoteAddr.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// WriteJSONError is the default refusal: {"error", "status", "code"}, with
// Retry-After when there is one, as tokend's own API answers.
func WriteJSONError(w http.ResponseWriter, r *http.Request, e *Error) {
	h := w.Header()
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	if e.Limit > 0 {
		h.Set("X-Ratelimit-Limit", strconv.Itoa(e.Limit))
		h.Set("X-Ratelimit-Remaining", strconv.Itoa(e.Remaining))
		h.Set("X-Ratelimit-Reset", strconv.Itoa(int(math.Ceil(e.Reset.Seconds()))))
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e.Message, "status": e.Status, "code": e.Code})
}
