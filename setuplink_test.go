package tokend_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// An operator's new setup link works until it expires, and ends every earlier
// link of its account (not another account's); issuing one is audited.
func TestIssueSetupLinkReplacesTheAccountsEarlierLinks(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	svc := newService(t, func() time.Time { return now })
	acme, admin, err := svc.CreateAccount(ctx, "Acme", tokend.PlanFree, "ops")
	if err != nil {
		t.Fatal(err)
	}
	beta, _, err := svc.CreateAccount(ctx, "Beta", tokend.PlanFree, "ops")
	if err != nil {
		t.Fatal(err)
	}
	users := svc.Users()
	first, err := users.Invite(ctx, acme.ID, tokend.Admin) // the first start's link
	if err != nil {
		t.Fatal(err)
	}
	other, err := users.Invite(ctx, beta.ID, tokend.Admin)
	if err != nil {
		t.Fatal(err)
	}
	link, err := users.IssueSetupLink(ctx, acme.ID, tokend.Viewer, "ann")
	if err != nil || link.Replaced != 1 || link.Invite.Role != tokend.Viewer || !link.Invite.ExpiresAt.Equal(now.Add(7*24*time.Hour)) {
		t.Fatalf("IssueSetupLink = %+v, %v", link, err)
	}
	works := func(code string) bool { _, err := users.CheckInvite(ctx, code); return err == nil }
	if works(first) || !works(link.Code) || !works(other) {
		t.Errorf("after a new link: the first works %v, the new %v, another account's %v; want false, true, true", works(first), works(link.Code), works(other))
	}
	page, err := svc.AuditLog(ctx, &admin.Token, "", 10)
	if err != nil || len(page.Events) == 0 || page.Events[0].Action != tokend.ActionSetupLinkIssued || page.Events[0].Actor != "ann" {
		t.Errorf("audit log: %+v, %v", page, err)
	}
	now = now.Add(7 * 24 * time.Hour)
	if works(link.Code) {
		t.Error("a setup link works past its 7 days")
	}

	for _, tt := range []struct {
		name    string
		account int64
		role    tokend.AccessLevel
		code    string
	}{
		{"unknown account", 999, tokend.Admin, tokend.ENOTFOUND},
		{"no role", acme.ID, tokend.NoAccess, tokend.EINVALID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := users.IssueSetupLink(ctx, tt.account, tt.role, "ann"); tokend.ErrorCode(err) != tt.code {
				t.Errorf("IssueSetupLink = %v, want %s", err, tt.code)
			}
		})
	}
}
