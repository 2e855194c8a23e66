package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// postFrom submits a form as a page of the same site does, from a client
// address (the env must be behind a proxy).
func (b *browser) postFrom(addr, path string, form url.Values) *page {
	b.e.t.Helper()
	req, _ := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("X-Forwarded-For", addr)
	return b.do(req)
}

// guess tries passwords for email from each address, n times each, the
// addresses in parallel, and returns how many attempts got each status.
func (e *env) guess(email string, addrs []string, n int) map[int]int {
	e.t.Helper()
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	for _, addr := range addrs {
		wg.Go(func() {
			for i := range n {
				form := url.Values{"email": {email}, "password": {fmt.Sprintf("guess %s %d", addr, i)}}
				req, _ := http.NewRequest("POST", e.srv.URL+"/login", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Sec-Fetch-Site", "same-origin")
				req.Header.Set("X-Forwarded-For", addr)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					e.t.Error(err)
					return
				}
				res.Body.Close()
				mu.Lock()
				got[res.StatusCode]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return got
}

// addrs returns n client addresses 198.51.100.1 and on.
func addrs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("198.51.100.%d", i+1)
	}
	return out
}

// signInFrom signs in as email from a client address and returns the status.
func (e *env) signInFrom(addr, email string) int {
	e.t.Helper()
	return e.browser().postFrom(addr, "/login", url.Values{"email": {email}, "password": {e.people[email]}}).Status
}

// Twenty addresses guessing ten passwords each cannot stop the owner signing
// in from their own address: no limit a stranger's address spends is the
// owner's. More addresses together reaching the ceiling for the email raise
// an alert, once, in the audit log of the email's account; further attempts
// are refused (its owner's too) until the guessing stops. (One test: every
// guess costs a password hash, and the ceiling is counted on from the first
// part's.)
func TestManyAddressesGuessingOneEmail(t *testing.T) {
	e := newEnvWith(t, envOptions{behindProxy: true})
	got := e.guess("ann@example.com", addrs(20), tokend.SignInsPerAddressEmail)
	if got[401] != 200 {
		t.Fatalf("the guesses were answered %v, want 200 × 401", got)
	}
	if status := e.signInFrom("203.0.113.7", "ann@example.com"); status != http.StatusSeeOther {
		t.Fatalf("the owner signing in from their own address after the guessing: %d, want 303", status)
	}
	// Each guessing address has spent its own attempts for the email.
	e.browser().postFrom("198.51.100.1", "/login", url.Values{"email": {"ann@example.com"}, "password": {password}}).want(429)
	if n := len(alertEvents(t, e)); n != 0 {
		t.Errorf("%d ceiling alerts for 200 guesses, want none", n)
	}

	// Ten more addresses: 201 attempts were counted, so 99 more reach the ceiling.
	more := addrs(30)[20:]
	left := tokend.SignInsPerEmail - 201
	got = e.guess("ann@example.com", more, tokend.SignInsPerAddressEmail)
	if got[401] != left || got[429] != len(more)*tokend.SignInsPerAddressEmail-left {
		t.Fatalf("the guesses past the ceiling were answered %v, want %d × 401 and the rest 429", got, left)
	}
	if status := e.signInFrom("203.0.113.7", "ann@example.com"); status != http.StatusTooManyRequests {
		t.Errorf("at the ceiling, the owner: %d, want 429", status)
	}
	alerts := alertEvents(t, e)
	if len(alerts) != 1 {
		t.Fatalf("%d ceiling alerts, want 1: %+v", len(alerts), alerts)
	}
	a := alerts[0]
	if a.Actor != "tokend" || a.TargetType != "user" || a.TargetID == nil || a.Details["email"] != "ann@example.com" ||
		!strings.Contains(fmt.Sprint(a.Details["message"]), "Sign-in attempts for ann@example.com reached the ceiling of 300 a minute") {
		t.Errorf("the alert is %+v", a)
	}
	// The guessing stops; a minute later the owner signs in.
	e.clock.Advance(time.Minute)
	if status := e.signInFrom("203.0.113.7", "ann@example.com"); status != http.StatusSeeOther {
		t.Errorf("a minute after the guessing: %d, want 303", status)
	}
}

// One address guessing is throttled: ten attempts at one email a minute,
// twenty at all emails; the owner elsewhere is not affected, and a minute
// later the address may try again.
func TestOneAddressGuessingIsThrottled(t *testing.T) {
	e := newEnvWith(t, envOptions{behindProxy: true})
	b := e.browser()
	const from = "198.51.100.9"
	for i := range tokend.SignInsPerAddressEmail {
		b.postFrom(from, "/login", url.Values{"email": {"ann@example.com"}, "password": {fmt.Sprint("guess ", i)}}).want(401)
	}
	// The right password, now: still refused from there, for a minute.
	b.postFrom(from, "/login", url.Values{"email": {"ann@example.com"}, "password": {password}}).want(429).has("Too many sign-in attempts")
	if status := e.signInFrom("203.0.113.7", "ann@example.com"); status != http.StatusSeeOther {
		t.Errorf("the owner from another address: %d, want 303", status)
	}
	// Other emails from the same address, up to its own limit.
	if status := e.signInFrom(from, "vic@example.com"); status != http.StatusSeeOther {
		t.Errorf("another email from the guessing address: %d, want 303", status)
	}
	for i := range tokend.SignInsPerAddress - tokend.SignInsPerAddressEmail - 2 {
		b.postFrom(from, "/login", url.Values{"email": {fmt.Sprintf("guess%d@example.com", i)}, "password": {password}}).want(401)
	}
	b.postFrom(from, "/login", url.Values{"email": {"nobody@example.com"}, "password": {password}}).want(429)
	if status := e.signInFrom(from, "vic@example.com"); status != http.StatusTooManyRequests {
		t.Errorf("any email from the address past its limit: %d, want 429", status)
	}
	e.clock.Advance(time.Minute)
	if status := e.signInFrom(from, "ann@example.com"); status != http.StatusSeeOther {
		t.Errorf("a minute later: %d, want 303", status)
	}
}

type auditEvent struct {
	Action     string         `json:"action"`
	Actor      string         `json:"actor"`
	TargetType string         `json:"target_type"`
	TargetID   *int64         `json:"target_id"`
	Details    map[string]any `json:"details"`
}

// alertEvents reads the ceiling alerts from Acme's audit log, through the API.
func alertEvents(t *testing.T, e *env) []auditEvent {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/audit_log?limit=200", nil)
	req.Header.Set("Api-Token", e.admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var page struct {
		Data []auditEvent `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&page); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /api/audit_log: %d %v", res.StatusCode, err)
	}
	var out []auditEvent
	for _, ev := range page.Data {
		if ev.Action == tokend.ActionSignInCeiling {
			out = append(out, ev)
		}
	}
	return out
}

// sharedLimits stands in for Redis: limits every instance counts in.
type sharedLimits struct {
	*tokend.LocalLimits
	mu  sync.Mutex
	got []string // the keys taken
}

func (s *sharedLimits) TakeN(ctx context.Context, key string, rate tokend.Rate, n int) (tokend.LimitDecision, error) {
	s.mu.Lock()
	s.got = append(s.got, key)
	s.mu.Unlock()
	return s.LocalLimits.TakeN(ctx, key, rate, n)
}

// With limits shared across instances, an address's guesses at one
// instance count at the other; the owner still signs in from their own.
func TestSignInThrottleAcrossInstances(t *testing.T) {
	clock := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	shared := &sharedLimits{LocalLimits: tokend.NewLocalLimits(func() time.Time { return clock })}
	one := newEnvWith(t, envOptions{behindProxy: true, shared: shared})
	two := newEnvWith(t, envOptions{behindProxy: true, shared: shared})
	const from = "198.51.100.9"
	for i := range tokend.SignInsPerAddressEmail {
		one.browser().postFrom(from, "/login", url.Values{"email": {"ann@example.com"}, "password": {fmt.Sprint("guess ", i)}}).want(401)
	}
	two.browser().postFrom(from, "/login", url.Values{"email": {"ann@example.com"}, "password": {password}}).want(429)
	if status := two.signInFrom("203.0.113.7", "ann@example.com"); status != http.StatusSeeOther {
		t.Errorf("the owner at the other instance from their own address: %d, want 303", status)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for _, want := range []string{"signin:addr " + from, "signin:addr " + from + " email ann@example.com", "signin:email ann@example.com"} {
		found := false
		for _, k := range shared.got {
			found = found || k == want
		}
		if !found {
			t.Errorf("no %q in the shared limits' keys %q", want, shared.got[:min(len(shared.got), 5)])
		}
	}
}
