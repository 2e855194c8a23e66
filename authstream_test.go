package tokend_test

import (
	"testing"

	"github.com/tokend/tokend"
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
	// It no longer counts against the account's streams.
	for range tokend.MaxAuthSubscriptions {
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
