package tokend_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
)

// A subscriber that stops reading is dropped once it is a whole buffer
// behind, rather than slow every writer down.
func TestAuthSubscriberThatFallsBehindIsDropped(t *testing.T) {
	f := newFixture(t, tokend.Options{})
	admin := f.account(t)
	sub, err := f.svc.SubscribeAuthChanges(t.Context(), &admin.Token)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for range 1025 {
		f.svc.FlushAuthCache()
	}
	n := 0
	for range sub.C {
		n++
	}
	if !sub.Lost() || n != 1024 {
		t.Fatalf("lost %v after %d events, want dropped after 1024", sub.Lost(), n)
	}
	// It no longer counts against the token's streams.
	for range tokend.MaxServiceTokenStreams {
		s, err := f.svc.SubscribeAuthChanges(t.Context(), &admin.Token)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
	}
	if _, err := f.svc.SubscribeAuthChanges(t.Context(), &admin.Token); tokend.ErrorCode(err) != tokend.ERATELIMITED {
		t.Fatalf("one stream too many: %v", err)
	}
}

// A stream closed gives its room back to its token.
func TestAuthSubscriptionClosedFreesItsRoom(t *testing.T) {
	f := newFixture(t, tokend.Options{})
	admin := f.account(t)
	k, err := f.svc.CreateToken(t.Context(), &admin.Token, tokend.TokenInput{Name: "gateway",
		Permissions: []tokend.Permission{{ResourceType: tokend.ResourceAccount, ResourceID: admin.AccountID, Level: tokend.Viewer}}})
	if err != nil {
		t.Fatal(err)
	}
	key := &k.Token
	var first *tokend.AuthSubscription
	for range tokend.MaxServiceTokenStreams {
		s, err := f.svc.SubscribeAuthChanges(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if first == nil {
			first = s
		}
	}
	if _, err := f.svc.SubscribeAuthChanges(t.Context(), key); tokend.ErrorCode(err) != tokend.ERATELIMITED {
		t.Fatalf("a token's stream beyond the bounds: %v", err)
	}
	first.Close()
	first.Close() // twice is once
	s, err := f.svc.SubscribeAuthChanges(t.Context(), key)
	if err != nil {
		t.Fatalf("after a stream of the token closed: %v", err)
	}
	defer s.Close()
	if _, err := f.svc.SubscribeAuthChanges(t.Context(), key); tokend.ErrorCode(err) != tokend.ERATELIMITED {
		t.Fatalf("a closed stream freed more than its room: %v", err)
	}
}

// Test keys are never service tokens: whatever access they hold, they may
// not verify tokens, report usage or follow the change stream.
func TestTestKeyIsNotAServiceToken(t *testing.T) {
	f := newFixture(t, tokend.Options{})
	admin := f.account(t)
	k, err := f.svc.CreateToken(t.Context(), &admin.Token, tokend.TokenInput{Name: "ci", Environment: tokend.Test,
		Permissions: []tokend.Permission{{ResourceType: tokend.ResourceAccount, ResourceID: admin.AccountID, Level: tokend.Admin}}})
	if err != nil {
		t.Fatal(err)
	}
	key := &k.Token
	if tokend.IsServiceToken(key) || !tokend.IsServiceToken(&admin.Token) {
		t.Fatalf("IsServiceToken: test key %v, live admin %v", tokend.IsServiceToken(key), tokend.IsServiceToken(&admin.Token))
	}
	refused := func(what string, err error) {
		t.Helper()
		var e *tokend.Error
		if !errors.As(err, &e) || e.Code != tokend.EFORBIDDEN || e.Reason != "environment_not_allowed" || !strings.Contains(e.Message, "test key") {
			t.Errorf("%s with a test key: %v, want EFORBIDDEN environment_not_allowed", what, err)
		}
	}
	err = tokend.MayVerify(key)
	refused("MayVerify", err)
	sub, err := f.svc.SubscribeAuthChanges(t.Context(), key)
	if sub != nil {
		sub.Close()
	}
	refused("SubscribeAuthChanges", err)
	v := tokend.NewVerifier(f.svc, tokend.VerifierOptions{})
	_, err = v.VerifyToken(t.Context(), key, admin.Value, "", nil)
	refused("VerifyToken", err)
	_, err = v.ReportUsage(t.Context(), key, []tokend.UsageReport{{TokenHash: apikey.Hash(admin.Value), Want: 1}})
	refused("ReportUsage", err)
}

func TestAuthSubscriptionNeedsAccountViewer(t *testing.T) {
	f := newFixture(t, tokend.Options{})
	admin := f.account(t)
	p, err := f.svc.CreateProject(t.Context(), &admin.Token, "P")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.svc.CreateToken(t.Context(), &admin.Token, tokend.TokenInput{Name: "p",
		Permissions: []tokend.Permission{{ResourceType: tokend.ResourceProject, ResourceID: p.ID, Level: tokend.Admin}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.SubscribeAuthChanges(t.Context(), &tok.Token); tokend.ErrorCode(err) != tokend.EFORBIDDEN {
		t.Fatalf("a project token subscribed: %v", err)
	}
}

// A change made through this process is told to subscribers once, although
// the change feed reads it back from the log too.
func TestAuthSubscriberHearsOfAChangeOnce(t *testing.T) {
	f := newFixture(t, tokend.Options{})
	admin := f.account(t)
	if err := f.svc.SyncAuthCache(t.Context()); err != nil { // the feed stands at the log's end
		t.Fatal(err)
	}
	sub, err := f.svc.SubscribeAuthChanges(t.Context(), &admin.Token)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	tok := f.token(t, "doomed")
	if err := f.svc.DeleteToken(t.Context(), &admin.Token, tok.ID); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := f.svc.SyncAuthCache(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	var got []tokend.AuthEvent
	for len(sub.C) > 0 {
		got = append(got, <-sub.C)
	}
	if len(got) != 1 || got[0].TokenID != tok.ID || got[0].AccountID != admin.AccountID {
		t.Fatalf("events %+v, want the deletion of token %d once", got, tok.ID)
	}
}
