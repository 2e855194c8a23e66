// Package storetest is the conformance suite every tokend.Store must pass.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// Run runs the suite; open returns a new, empty store for each test.
func Run(t *testing.T, open func(t *testing.T) tokend.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s tokend.Store)
	}{
		{"AccountsRoundTrip", testAccounts},
		{"ResourcesRoundTrip", testResources},
		{"DomainNameUniquePerAccount", testDomainUnique},
		{"DomainDNSClaimedByOneAccount", testDomainDNS},
		{"DeleteProjectTakesSandboxesAndPermissions", testDeleteProject},
		{"TokensRoundTrip", testTokens},
		{"UpdateTokenReplacesPermissions", testUpdateToken},
		{"GuardsRoundTrip", testGuardsRoundTrip},
		{"QuotaSpendsAllOrNoneAndNeverOver", testQuotaSpends},
		{"DeleteTokensExpiredBefore", testPurge},
		{"MissingRecordsAreNotFound", testNotFound},
		{"FailedWriteRollsBack", testRollback},
		{"WritesAreSerialized", testSerialized},
		{"PlanAndLimitReachTokens", testPlan},
		{"UsageAddsUp", testUsage},
		{"AuditEventsPageNewestFirst", testAudit},
		{"TokenNetworks", testNetworks},
		{"AuthChangesInOrder", testAuthChanges},
		{"ForEachTokenVisitsUnexpiredInOrder", testForEachToken},
		{"PermissionsKeepTheirOrder", testPermissionOrder},
		{"OutboxClaimsDueUnleasedJobs", testOutboxClaims},
		{"OutboxRetryReleaseFinish", testOutboxOutcomes},
		{"OutboxConcurrentClaimsNeverShareAJob", testOutboxConcurrentClaims},
		{"EmailsRoundTripAndDropDeliveredContent", testEmailsRoundTrip},
		{"SandboxEmailsPageSearchAndCascade", testSandboxEmails},
		{"SandboxUsageEvictionAndRetention", testSandboxUsage},
		{"DomainKeysCaptureSandboxAndSettings", testDomainKeysAndSettings},
		{"EmailLogsFilterPageAndCount", testEmailLogs},
		{"EmailEventsGoWithTheirMessages", testEmailEvents},
		{"SuppressionsHoldPerDomainOrAccount", testSuppressions},
		{"OutboxOrderingKeysKeepOrder", testOutboxOrdering},
		{"WebhooksAndDeliveriesRoundTrip", testWebhooks},
		{"UsersSessionsInvites", testUsersSessionsInvites},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			tt.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

func write(t *testing.T, s tokend.Store, fn func(tokend.Tx) error) {
	t.Helper()
	if err := s.Write(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, s tokend.Store, fn func(tokend.Tx) error) {
	t.Helper()
	if err := s.Read(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func newAccount(t *testing.T, s tokend.Store, name string) *tokend.Account {
	t.Helper()
	a := &tokend.Account{Name: name, Plan: tokend.PlanPro, RateLimit: 1000, MessageLimit: 10_000, CreatedAt: t0}
	write(t, s, func(tx tokend.Tx) error { return tx.CreateAccount(context.Background(), a) })
	return a
}

func newResource(t *testing.T, s tokend.Store, r tokend.Resource) tokend.Resource {
	t.Helper()
	r.CreatedAt = t0
	write(t, s, func(tx tokend.Tx) error { return tx.CreateResource(context.Background(), &r) })
	return r
}

var hashSeq int

func newToken(t *testing.T, s tokend.Store, accountID int64, perms ...tokend.Permission) *tokend.Token {
	t.Helper()
	hashSeq++
	h := sha256.Sum256([]byte(fmt.Sprint("token", hashSeq)))
	tok := &tokend.Token{AccountID: accountID, Name: fmt.Sprint("token ", hashSeq), Hash: h[:], Last4: "abcd",
		Environment: tokend.Live, CreatedBy: "suite", CreatedAt: t0, Permissions: perms}
	write(t, s, func(tx tokend.Tx) error { return tx.CreateToken(context.Background(), tok) })
	return tok
}

func testAccounts(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	b := newAccount(t, s, "Beta")
	if a.ID == 0 || b.ID <= a.ID {
		t.Fatalf("account IDs %d, %d: want increasing, non-zero", a.ID, b.ID)
	}
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.Account(context.Background(), a.ID)
		if err != nil {
			return err
		}
		want := *a
		want.LeakPolicy = tokend.LeakRevoke // the default
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("Account = %+v, want %+v", *got, want)
		}
		all, err := tx.Accounts(context.Background())
		if len(all) != 2 || all[0].ID != a.ID || all[1].ID != b.ID {
			t.Errorf("Accounts = %+v", all)
		}
		return err
	})
	// Token settings: nil days is the default, an empty list is none.
	for _, days := range [][]int{{14, 3, 1}, {}, nil} {
		write(t, s, func(tx tokend.Tx) error {
			return tx.SetTokenSettings(context.Background(), b.ID, days, tokend.LeakNotify)
		})
		read(t, s, func(tx tokend.Tx) error {
			got, err := tx.Account(context.Background(), b.ID)
			if err == nil && (!reflect.DeepEqual(got.ExpiryWarningDays, days) || got.LeakPolicy != tokend.LeakNotify) {
				t.Errorf("token settings %v: read back %v %q", days, got.ExpiryWarningDays, got.LeakPolicy)
			}
			return err
		})
	}
}

func testResources(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	p := newResource(t, s, tokend.Resource{Type: tokend.ResourceProject, AccountID: a.ID, Name: "Web"})
	sb := newResource(t, s, tokend.Resource{Type: tokend.ResourceSandbox, AccountID: a.ID, ProjectID: p.ID, Name: "QA"})
	d := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "example.com"})
	write(t, s, func(tx tokend.Tx) error {
		return tx.RenameResource(context.Background(), tokend.ResourceProject, p.ID, "Website")
	})
	p.Name = "Website"
	read(t, s, func(tx tokend.Tx) error {
		all, err := tx.Resources(context.Background(), a.ID)
		if err != nil {
			return err
		}
		want := []tokend.Resource{p, sb, d}
		if len(all) != len(want) {
			t.Fatalf("Resources = %+v, want %+v", all, want)
		}
		for i := range want {
			if all[i] != want[i] {
				t.Errorf("Resources[%d] = %+v, want %+v", i, all[i], want[i])
			}
		}
		got, err := tx.Resource(context.Background(), tokend.ResourceSandbox, sb.ID)
		if err == nil && *got != sb {
			t.Errorf("Resource = %+v, want %+v", *got, sb)
		}
		if _, err := tx.Resource(context.Background(), tokend.ResourceDomain, sb.ID); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("a sandbox looked up as a domain: err = %v, want ENOTFOUND", err)
		}
		return err
	})
}

func testDomainUnique(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	b := newAccount(t, s, "Beta")
	newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "example.com"})
	newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: b.ID, Name: "example.com"})
	err := s.Write(context.Background(), func(tx tokend.Tx) error {
		return tx.CreateResource(context.Background(), &tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "example.com", CreatedAt: t0})
	})
	var e *tokend.Error
	if !errors.As(err, &e) || e.Code != tokend.EINVALID || len(e.Fields["domain_name"]) == 0 {
		t.Fatalf("second example.com in one account: err = %v, want EINVALID on domain_name", err)
	}
}

func testDeleteProject(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	p := newResource(t, s, tokend.Resource{Type: tokend.ResourceProject, AccountID: a.ID, Name: "Web"})
	sb := newResource(t, s, tokend.Resource{Type: tokend.ResourceSandbox, AccountID: a.ID, ProjectID: p.ID, Name: "QA"})
	d := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "example.com"})
	tok := newToken(t, s, a.ID,
		tokend.Permission{ResourceType: tokend.ResourceProject, ResourceID: p.ID, Level: tokend.Admin},
		tokend.Permission{ResourceType: tokend.ResourceSandbox, ResourceID: sb.ID, Level: tokend.Viewer},
		tokend.Permission{ResourceType: tokend.ResourceDomain, ResourceID: d.ID, Level: tokend.Admin})
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteResource(context.Background(), tokend.ResourceProject, p.ID) })
	read(t, s, func(tx tokend.Tx) error {
		if _, err := tx.Resource(context.Background(), tokend.ResourceSandbox, sb.ID); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("sandbox of a deleted project: err = %v, want ENOTFOUND", err)
		}
		got, err := tx.Token(context.Background(), tok.ID)
		if err != nil {
			return err
		}
		if len(got.Permissions) != 1 || got.Permissions[0].ResourceType != tokend.ResourceDomain {
			t.Errorf("permissions after deleting the project = %+v, want only the domain", got.Permissions)
		}
		return nil
	})
}

func testTokens(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	b := newAccount(t, s, "Beta")
	exp := t0.Add(time.Hour)
	perms := []tokend.Permission{
		{ResourceType: tokend.ResourceDomain, ResourceID: 7, Level: tokend.Admin},
		{ResourceType: tokend.ResourceAccount, ResourceID: a.ID, Level: tokend.Viewer},
	}
	h := sha256.Sum256([]byte("value"))
	tok := &tokend.Token{AccountID: a.ID, Name: "CI", Hash: h[:], Last4: "wxyz", Environment: tokend.Test,
		CreatedBy: "admin", CreatedAt: t0, ExpiresAt: &exp, Permissions: perms}
	write(t, s, func(tx tokend.Tx) error { return tx.CreateToken(context.Background(), tok) })
	other := newToken(t, s, b.ID)
	bare := newToken(t, s, a.ID)

	got, err := s.TokenByHash(context.Background(), h[:])
	if err != nil {
		t.Fatal(err)
	}
	assertToken(t, got, tok)
	if _, err := s.TokenByHash(context.Background(), make([]byte, 32)); tokend.ErrorCode(err) != tokend.ENOTFOUND {
		t.Errorf("TokenByHash(unknown) err = %v, want ENOTFOUND", err)
	}
	read(t, s, func(tx tokend.Tx) error {
		list, err := tx.Tokens(context.Background(), a.ID)
		if err != nil {
			return err
		}
		if len(list) != 2 || list[0].ID != tok.ID || list[1].ID != bare.ID {
			t.Fatalf("Tokens(a) = %+v, want [%d %d]", list, tok.ID, bare.ID)
		}
		if list[1].Permissions == nil || len(list[1].Permissions) != 0 {
			t.Errorf("a token without permissions has %#v, want an empty slice", list[1].Permissions)
		}
		assertToken(t, &list[0], tok)
		one, err := tx.Token(context.Background(), other.ID)
		if err == nil && one.AccountID != b.ID {
			t.Errorf("Token(other).AccountID = %d", one.AccountID)
		}
		return err
	})
}

func assertToken(t *testing.T, got, want *tokend.Token) {
	t.Helper()
	if got.ID != want.ID || got.AccountID != want.AccountID || got.Name != want.Name || !bytes.Equal(got.Hash, want.Hash) ||
		got.Last4 != want.Last4 || got.Environment != want.Environment || got.CreatedBy != want.CreatedBy ||
		!got.CreatedAt.Equal(want.CreatedAt) || !timeEq(got.ExpiresAt, want.ExpiresAt) || !timeEq(got.ResetAt, want.ResetAt) {
		t.Errorf("token = %+v\nwant    %+v", *got, *want)
	}
	if fmt.Sprint(got.Permissions) != fmt.Sprint(want.Permissions) {
		t.Errorf("permissions = %v, want %v (in insertion order)", got.Permissions, want.Permissions)
	}
}

func timeEq(a, b *time.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
}

func testUpdateToken(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	tok := newToken(t, s, a.ID, tokend.Permission{ResourceType: tokend.ResourceAccount, ResourceID: a.ID, Level: tokend.Admin})
	exp, reset := t0.Add(12*time.Hour), t0
	tok.Name, tok.ExpiresAt, tok.ResetAt = "renamed", &exp, &reset
	tok.Permissions = []tokend.Permission{{ResourceType: tokend.ResourceProject, ResourceID: 3, Level: tokend.Viewer}}
	write(t, s, func(tx tokend.Tx) error { return tx.UpdateToken(context.Background(), tok) })
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.Token(context.Background(), tok.ID)
		if err == nil {
			assertToken(t, got, tok)
		}
		return err
	})
}

func testPurge(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	var ids []int64
	for _, exp := range []*time.Time{nil, ptr(t0.Add(-time.Hour)), ptr(t0), ptr(t0.Add(time.Second))} {
		tok := newToken(t, s, a.ID)
		tok.ExpiresAt = exp
		write(t, s, func(tx tokend.Tx) error { return tx.UpdateToken(context.Background(), tok) })
		ids = append(ids, tok.ID)
	}
	write(t, s, func(tx tokend.Tx) error {
		n, err := tx.DeleteTokensExpiredBefore(context.Background(), t0)
		if n != 2 {
			t.Errorf("deleted %d tokens, want 2", n)
		}
		return err
	})
	read(t, s, func(tx tokend.Tx) error {
		left, err := tx.Tokens(context.Background(), a.ID)
		if len(left) != 2 || left[0].ID != ids[0] || left[1].ID != ids[3] {
			t.Errorf("left after purge: %+v, want tokens %d and %d", left, ids[0], ids[3])
		}
		return err
	})
}

func ptr[T any](v T) *T { return &v }

func testNotFound(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	err := s.Write(ctx, func(tx tokend.Tx) error {
		checks := map[string]error{}
		_, checks["Account"] = tx.Account(ctx, 99)
		_, checks["Resource"] = tx.Resource(ctx, tokend.ResourceProject, 99)
		_, checks["Token"] = tx.Token(ctx, 99)
		checks["RenameResource"] = tx.RenameResource(ctx, tokend.ResourceProject, 99, "x")
		checks["DeleteResource"] = tx.DeleteResource(ctx, tokend.ResourceDomain, 99)
		checks["DeleteToken"] = tx.DeleteToken(ctx, 99)
		checks["UpdateToken"] = tx.UpdateToken(ctx, &tokend.Token{ID: 99, Name: "x"})
		for name, err := range checks {
			if tokend.ErrorCode(err) != tokend.ENOTFOUND {
				t.Errorf("%s of a missing record: err = %v, want ENOTFOUND", name, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testRollback(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	boom := errors.New("boom")
	err := s.Write(context.Background(), func(tx tokend.Tx) error {
		h := sha256.Sum256([]byte("rolled back"))
		if err := tx.CreateToken(context.Background(), &tokend.Token{AccountID: a.ID, Name: "x", Hash: h[:], Last4: "abcd",
			Environment: tokend.Live, CreatedBy: "suite", CreatedAt: t0}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write returned %v, want fn's error", err)
	}
	read(t, s, func(tx tokend.Tx) error {
		list, err := tx.Tokens(context.Background(), a.ID)
		if len(list) != 0 {
			t.Errorf("a failed write left %d tokens behind", len(list))
		}
		return err
	})
}

// testSerialized runs concurrent check-then-insert transactions: each inserts
// only if the account has fewer than limit tokens. Serialized writes never overshoot.
func testSerialized(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	const workers, limit = 8, 3
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := s.Write(context.Background(), func(tx tokend.Tx) error {
				list, err := tx.Tokens(context.Background(), a.ID)
				if err != nil || len(list) >= limit {
					return err
				}
				h := sha256.Sum256([]byte(fmt.Sprint("serial", i)))
				return tx.CreateToken(context.Background(), &tokend.Token{AccountID: a.ID, Name: "x", Hash: h[:], Last4: "abcd",
					Environment: tokend.Live, CreatedBy: "suite", CreatedAt: t0})
			})
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	read(t, s, func(tx tokend.Tx) error {
		list, err := tx.Tokens(context.Background(), a.ID)
		if len(list) != limit {
			t.Errorf("%d concurrent check-then-insert writes left %d tokens, want %d", workers, len(list), limit)
		}
		return err
	})
}

func testPlan(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	tok := newToken(t, s, a.ID)
	got, err := s.TokenByHash(context.Background(), tok.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccountLimit != 1000 || got.AccountMessageLimit != 10_000 {
		t.Errorf("limits as created: AccountLimit = %d, AccountMessageLimit = %d; want 1000 and 10000", got.AccountLimit, got.AccountMessageLimit)
	}
	write(t, s, func(tx tokend.Tx) error {
		return tx.SetPlan(context.Background(), a.ID, tokend.PlanEnterprise, 5000, 250_000)
	})
	if got, err = s.TokenByHash(context.Background(), tok.Hash); err != nil {
		t.Fatal(err)
	}
	if got.AccountLimit != 5000 || got.AccountMessageLimit != 250_000 {
		t.Errorf("AccountLimit = %d, AccountMessageLimit = %d; want 5000 and 250000", got.AccountLimit, got.AccountMessageLimit)
	}
	read(t, s, func(tx tokend.Tx) error {
		acct, err := tx.Account(context.Background(), a.ID)
		if err == nil && (acct.Plan != tokend.PlanEnterprise || acct.RateLimit != 5000 || acct.MessageLimit != 250_000) {
			t.Errorf("account = %+v", acct)
		}
		list, lerr := tx.Accounts(context.Background())
		if lerr == nil && (len(list) != 1 || list[0].MessageLimit != 250_000) {
			t.Errorf("accounts = %+v", list)
		}
		return errors.Join(err, lerr)
	})
	// The schema refuses an allowance that is not positive.
	if err := s.Write(context.Background(), func(tx tokend.Tx) error {
		return tx.SetPlan(context.Background(), a.ID, tokend.PlanEnterprise, 5000, 0)
	}); err == nil {
		t.Error("SetPlan stored a message limit of 0")
	}
	err = s.Write(context.Background(), func(tx tokend.Tx) error { return tx.SetPlan(context.Background(), 999, tokend.PlanPro, 1000, 10_000) })
	if tokend.ErrorCode(err) != tokend.ENOTFOUND {
		t.Errorf("SetPlan of a missing account: %v", err)
	}
}

func testUsage(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	tok := newToken(t, s, a.ID)
	later, earlier := t0.Add(time.Hour), t0
	add := func(at time.Time, counts ...tokend.UsageCount) {
		write(t, s, func(tx tokend.Tx) error { return tx.AddUsage(context.Background(), tok.ID, at, counts) })
	}
	add(later, tokend.UsageCount{Day: "2026-01-02", Outcome: tokend.OutcomeSuccess, Count: 3})
	add(earlier, tokend.UsageCount{Day: "2026-01-02", Outcome: tokend.OutcomeSuccess, Count: 2},
		tokend.UsageCount{Day: "2026-01-01", Outcome: tokend.OutcomeRateLimited, Count: 1})
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.Usage(context.Background(), tok.ID)
		want := "[{2026-01-01 rate_limited 1} {2026-01-02 success 5}]"
		if fmt.Sprint(got) != want {
			t.Errorf("Usage = %v, want %s", got, want)
		}
		stored, err2 := tx.Token(context.Background(), tok.ID)
		if err2 == nil && (stored.LastUsedAt == nil || !stored.LastUsedAt.Equal(later)) {
			t.Errorf("last_used_at = %v, want the later %v (it never moves back)", stored.LastUsedAt, later)
		}
		return errors.Join(err, err2)
	})
	// Usage of a deleted token is dropped without error.
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteToken(context.Background(), tok.ID) })
	add(later, tokend.UsageCount{Day: "2026-01-02", Outcome: tokend.OutcomeSuccess, Count: 1})
}

func testAudit(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	b := newAccount(t, s, "Beta")
	var ids []int64
	for i := 0; i < 5; i++ {
		e := &tokend.AuditEvent{AccountID: a.ID, At: t0, Actor: "admin", ActorTokenID: 7, Action: tokend.ActionTokenCreated,
			TargetType: "api_token", TargetID: int64(i + 1), ClientAddr: "203.0.113.9", Details: map[string]any{"name": fmt.Sprint("t", i)}}
		write(t, s, func(tx tokend.Tx) error { return tx.AddAuditEvent(context.Background(), e) })
		ids = append(ids, e.ID)
	}
	write(t, s, func(tx tokend.Tx) error {
		return tx.AddAuditEvent(context.Background(), &tokend.AuditEvent{AccountID: b.ID, At: t0, Actor: "x", Action: "a", TargetType: "t", ClientAddr: "local"})
	})
	write(t, s, func(tx tokend.Tx) error { // no account: an address alert
		return tx.AddAuditEvent(context.Background(), &tokend.AuditEvent{At: t0, Actor: "tokend", Action: "alert.address_failures", TargetType: "client", ClientAddr: "198.51.100.1"})
	})
	read(t, s, func(tx tokend.Tx) error {
		first, err := tx.AuditEvents(context.Background(), a.ID, 0, 3)
		if err != nil {
			return err
		}
		if len(first) != 3 || first[0].ID != ids[4] || first[2].ID != ids[2] {
			t.Fatalf("first page = %+v", first)
		}
		e := first[0]
		if e.Actor != "admin" || e.ActorTokenID != 7 || e.TargetID != 5 || e.ClientAddr != "203.0.113.9" || e.Details["name"] != "t4" || !e.At.Equal(t0) {
			t.Errorf("event = %+v", e)
		}
		rest, err := tx.AuditEvents(context.Background(), a.ID, first[2].ID, 3)
		if len(rest) != 2 || rest[0].ID != ids[1] || rest[1].ID != ids[0] {
			t.Errorf("second page = %+v", rest)
		}
		return err
	})
}

func testNetworks(t *testing.T, s tokend.Store) {
	a := newAccount(t, s, "Acme")
	tok := newToken(t, s, a.ID)
	steps := []struct {
		network string
		isNew   bool
		before  int
	}{
		{"203.0.113.0/24", true, 0},
		{"203.0.113.0/24", false, 1},
		{"198.51.100.0/24", true, 1},
	}
	for _, st := range steps {
		write(t, s, func(tx tokend.Tx) error {
			isNew, before, err := tx.AddTokenNetwork(context.Background(), tok.ID, st.network, t0)
			if isNew != st.isNew || before != st.before {
				t.Errorf("AddTokenNetwork(%s) = %v, %d; want %v, %d", st.network, isNew, before, st.isNew, st.before)
			}
			return err
		})
	}
	write(t, s, func(tx tokend.Tx) error {
		isNew, _, err := tx.AddTokenNetwork(context.Background(), 999, "192.0.2.0/24", t0)
		if isNew {
			t.Error("a missing token got a new network")
		}
		return err
	})
}
