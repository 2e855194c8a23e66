package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

func storeEmail(t *testing.T, s tokend.Store, e *tokend.StoredEmail, recipients ...string) []tokend.Message {
	t.Helper()
	msgs := make([]tokend.Message, len(recipients))
	state := tokend.MessageQueued
	if e.SandboxID != 0 {
		state = tokend.MessageCaptured
	}
	for i, r := range recipients {
		hashSeq++
		msgs[i] = tokend.Message{ID: fmt.Sprintf("msg-%06d", hashSeq), AccountID: e.AccountID, DomainID: e.DomainID, Recipient: r, State: state,
			CreatedAt: e.CreatedAt, UpdatedAt: e.CreatedAt}
	}
	write(t, s, func(tx tokend.Tx) error { return tx.CreateEmail(context.Background(), e, msgs) })
	if e.ID == 0 || msgs[0].EmailID != e.ID {
		t.Fatalf("CreateEmail set ids %d / %d", e.ID, msgs[0].EmailID)
	}
	return msgs
}

// A live email round-trips with its raw content and its messages; when the
// last message is final the content is dropped, the state kept.
func testEmailsRoundTrip(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	a := newAccount(t, s, "Acme")
	d := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "example.com"})
	e := &tokend.StoredEmail{AccountID: a.ID, TokenID: 7, DomainID: d.ID, MailFrom: "a@example.com",
		From: tokend.Address{Email: "a@example.com", Name: "A"}, To: tokend.Address{Email: "b@example.org", Name: "B"},
		Subject: "Hi", Category: "welcome", CustomVariables: map[string]string{"user": "42"},
		Raw: []byte("Subject: Hi\r\n\r\nbody"), Size: 20, TextSize: 4, CreatedAt: t0, UpdatedAt: t0}
	msgs := storeEmail(t, s, e, "b@example.org", "c@example.org")
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.Email(ctx, e.ID)
		if err != nil {
			return err
		}
		if string(got.Raw) != string(e.Raw) || got.Subject != "Hi" || got.From != e.From || got.To != e.To || got.DomainID != d.ID ||
			got.CustomVariables["user"] != "42" || got.Category != "welcome" || !got.CreatedAt.Equal(t0) {
			t.Errorf("Email = %+v", got)
		}
		info, err := tx.EmailInfo(ctx, e.ID)
		if err != nil || len(info.Raw) != 0 || info.Subject != "Hi" || info.Size != e.Size {
			t.Errorf("EmailInfo = %+v %v, want the email without its content", info, err)
		}
		m, err := tx.Message(ctx, msgs[1].ID)
		if err != nil {
			return err
		}
		if m.Recipient != "c@example.org" || m.State != tokend.MessageQueued || m.EmailID != e.ID || m.AccountID != a.ID {
			t.Errorf("Message = %+v", m)
		}
		return nil
	})
	at := t0.Add(time.Minute)
	write(t, s, func(tx tokend.Tx) error {
		_, err := tx.UpdateMessage(ctx, msgs[0].ID, tokend.MessageDelivered, 1, "", at)
		return err
	})
	write(t, s, func(tx tokend.Tx) error {
		_, err := tx.UpdateMessage(ctx, msgs[1].ID, tokend.MessageDeferred, 2, "451 later", at)
		return err
	})
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.Email(ctx, e.ID)
		if err == nil && len(got.Raw) == 0 {
			t.Error("content dropped while a message still waits")
		}
		m, _ := tx.Message(ctx, msgs[1].ID)
		if m.State != tokend.MessageDeferred || m.Attempts != 2 || m.LastError != "451 later" || !m.UpdatedAt.Equal(at) {
			t.Errorf("deferred message = %+v", m)
		}
		return err
	})
	write(t, s, func(tx tokend.Tx) error {
		_, err := tx.UpdateMessage(ctx, msgs[1].ID, tokend.MessageFailed, 3, "550 no", at)
		return err
	})
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.Email(ctx, e.ID)
		if err == nil && len(got.Raw) != 0 {
			t.Errorf("content kept after every message is final: %q", got.Raw)
		}
		return err
	})
	write(t, s, func(tx tokend.Tx) error {
		if _, err := tx.UpdateMessage(ctx, "no-such-message", tokend.MessageDelivered, 1, "", at); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("UpdateMessage of a missing message: %v", err)
		}
		return nil
	})
}

// Captured emails list newest first, page by offset or by id, match a
// search, and go with their sandbox.
func testSandboxEmails(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	a := newAccount(t, s, "Acme")
	p := newResource(t, s, tokend.Resource{Type: tokend.ResourceProject, AccountID: a.ID, Name: "P"})
	sb := newResource(t, s, tokend.Resource{Type: tokend.ResourceSandbox, AccountID: a.ID, ProjectID: p.ID, Name: "S"})
	other := newResource(t, s, tokend.Resource{Type: tokend.ResourceSandbox, AccountID: a.ID, ProjectID: p.ID, Name: "T"})
	var ids []int64
	var msgIDs []string
	for i := range 5 {
		e := &tokend.StoredEmail{AccountID: a.ID, SandboxID: sb.ID, MailFrom: "a@x.test", From: tokend.Address{Email: "a@x.test"},
			To: tokend.Address{Email: fmt.Sprintf("user%d@example.org", i), Name: "User"}, Subject: fmt.Sprintf("Subject %d_%%", i),
			Raw: []byte("raw"), Size: 3, CreatedAt: t0, UpdatedAt: t0}
		m := storeEmail(t, s, e, e.To.Email)
		ids, msgIDs = append(ids, e.ID), append(msgIDs, m[0].ID)
	}
	storeEmail(t, s, &tokend.StoredEmail{AccountID: a.ID, SandboxID: other.ID, MailFrom: "a@x.test", To: tokend.Address{Email: "z@example.org"},
		Subject: "elsewhere", Raw: []byte("r"), CreatedAt: t0, UpdatedAt: t0}, "z@example.org")
	list := func(q tokend.SandboxQuery) []int64 {
		var out []int64
		read(t, s, func(tx tokend.Tx) error {
			got, err := tx.SandboxEmails(ctx, sb.ID, q)
			for _, e := range got {
				if e.Raw != nil {
					t.Errorf("SandboxEmails returned raw content")
				}
				out = append(out, e.ID)
			}
			return err
		})
		return out
	}
	for _, tt := range []struct {
		name string
		q    tokend.SandboxQuery
		want []int64
	}{
		{"all, newest first", tokend.SandboxQuery{}, []int64{ids[4], ids[3], ids[2], ids[1], ids[0]}},
		{"a page", tokend.SandboxQuery{Limit: 2, Offset: 2}, []int64{ids[2], ids[1]}},
		{"before an id", tokend.SandboxQuery{BeforeID: ids[2], Limit: 30}, []int64{ids[1], ids[0]}},
		{"search the subject", tokend.SandboxQuery{Search: "subject 3"}, []int64{ids[3]}},
		{"search the recipient", tokend.SandboxQuery{Search: "USER1@"}, []int64{ids[1]}},
		{"search for a wildcard matches it literally", tokend.SandboxQuery{Search: "4_%"}, []int64{ids[4]}},
		{"search for nothing there", tokend.SandboxQuery{Search: "%x%"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := list(tt.q); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("ids %v, want %v", got, tt.want)
			}
		})
	}
	write(t, s, func(tx tokend.Tx) error { return tx.MarkEmailRead(ctx, ids[0], true, t0.Add(time.Hour)) })
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteEmail(ctx, ids[1]) })
	read(t, s, func(tx tokend.Tx) error {
		e, err := tx.Email(ctx, ids[0])
		if err != nil || !e.IsRead || !e.UpdatedAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("marked read: %+v %v", e, err)
		}
		if _, err := tx.Message(ctx, msgIDs[1]); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("a deleted email's message: %v", err)
		}
		return nil
	})
	// Deleting the project deletes its sandboxes and what they captured.
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteResource(ctx, tokend.ResourceProject, p.ID) })
	read(t, s, func(tx tokend.Tx) error {
		if _, err := tx.Email(ctx, ids[0]); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("an email of a deleted sandbox: %v", err)
		}
		if _, err := tx.Message(ctx, msgIDs[0]); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("a message of a deleted sandbox: %v", err)
		}
		return nil
	})
}

// Domain keys outlive their domain while its mail waits, then the purge
// takes them; the capture sandbox and settings round-trip.
func testDomainKeysAndSettings(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	a := newAccount(t, s, "Acme")
	d := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "example.com"})
	k := &tokend.DomainKey{DomainID: d.ID, AccountID: a.ID, Domain: "example.com", Selector: "sel", PublicKey: []byte{1, 2},
		SealedPrivateKey: []byte{3, 4}, CreatedAt: t0}
	bare := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "bare.example.com"})
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.DomainsWithoutKey(ctx)
		if len(got) != 2 || got[0].ID != d.ID || got[1].ID != bare.ID || got[1].Name != "bare.example.com" || got[1].AccountID != a.ID {
			t.Errorf("DomainsWithoutKey before a key = %+v", got)
		}
		return err
	})
	write(t, s, func(tx tokend.Tx) error { return tx.CreateDomainKey(ctx, k) })
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.DomainsWithoutKey(ctx)
		if len(got) != 1 || got[0].ID != bare.ID {
			t.Errorf("DomainsWithoutKey = %+v, want only %d", got, bare.ID)
		}
		return err
	})
	msgs := storeEmail(t, s, &tokend.StoredEmail{AccountID: a.ID, DomainID: d.ID, MailFrom: "a@example.com",
		Raw: []byte("r"), CreatedAt: t0, UpdatedAt: t0}, "b@example.org")
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteResource(ctx, tokend.ResourceDomain, d.ID) })
	purge := func(cutoff time.Time) int64 {
		var n int64
		write(t, s, func(tx tokend.Tx) error {
			var err error
			n, err = tx.DeleteEmailsBefore(ctx, cutoff, 1000)
			return err
		})
		return n
	}
	if n := purge(t0.Add(time.Hour)); n != 0 {
		t.Errorf("purge deleted %d emails with a message waiting", n)
	}
	read(t, s, func(tx tokend.Tx) error {
		got, err := tx.DomainKey(ctx, d.ID)
		if err != nil || got.Domain != "example.com" || string(got.SealedPrivateKey) != "\x03\x04" {
			t.Errorf("key of a deleted domain with mail waiting: %+v %v", got, err)
		}
		keys, err := tx.DomainKeys(ctx, a.ID)
		if len(keys) != 0 {
			t.Errorf("DomainKeys lists a deleted domain's key: %+v", keys)
		}
		return err
	})
	write(t, s, func(tx tokend.Tx) error {
		_, err := tx.UpdateMessage(ctx, msgs[0].ID, tokend.MessageDelivered, 1, "", t0)
		return err
	})
	if n := purge(t0); n != 0 {
		t.Errorf("purge deleted %d emails created after the cutoff", n)
	}
	if n := purge(t0.Add(time.Hour)); n != 1 {
		t.Errorf("purge deleted %d emails, want 1", n)
	}
	read(t, s, func(tx tokend.Tx) error {
		if _, err := tx.DomainKey(ctx, d.ID); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("a deleted domain's key after its mail is gone: %v", err)
		}
		return nil
	})

	p := newResource(t, s, tokend.Resource{Type: tokend.ResourceProject, AccountID: a.ID, Name: "P"})
	sb := newResource(t, s, tokend.Resource{Type: tokend.ResourceSandbox, AccountID: a.ID, ProjectID: p.ID, Name: "S"})
	capture := func() int64 {
		var id int64
		read(t, s, func(tx tokend.Tx) error {
			var err error
			id, err = tx.CaptureSandbox(ctx, a.ID)
			return err
		})
		return id
	}
	if id := capture(); id != 0 {
		t.Errorf("capture sandbox before one is set: %d", id)
	}
	write(t, s, func(tx tokend.Tx) error { return tx.SetCaptureSandbox(ctx, a.ID, sb.ID) })
	if id := capture(); id != sb.ID {
		t.Errorf("capture sandbox %d, want %d", id, sb.ID)
	}
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteResource(ctx, tokend.ResourceSandbox, sb.ID) })
	if id := capture(); id != 0 {
		t.Errorf("capture sandbox %d after it was deleted, want none", id)
	}

	write(t, s, func(tx tokend.Tx) error {
		if _, err := tx.Setting(ctx, "k"); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("unset setting: %v", err)
		}
		if err := tx.PutSetting(ctx, "k", []byte("one")); err != nil {
			return err
		}
		return tx.PutSetting(ctx, "k", []byte("two"))
	})
	read(t, s, func(tx tokend.Tx) error {
		v, err := tx.Setting(ctx, "k")
		if string(v) != "two" {
			t.Errorf("setting = %q, want the last put", v)
		}
		return err
	})
}

// A sandbox's usage follows its captured mail however the mail goes: added,
// deleted one by one, evicted oldest first, pruned by age, or with its
// sandbox and project. Live mail never counts.
func testSandboxUsage(t *testing.T, s tokend.Store) {
	ctx := context.Background()
	a := newAccount(t, s, "Acme")
	p := newResource(t, s, tokend.Resource{Type: tokend.ResourceProject, AccountID: a.ID, Name: "P"})
	sb := newResource(t, s, tokend.Resource{Type: tokend.ResourceSandbox, AccountID: a.ID, ProjectID: p.ID, Name: "S"})
	other := newResource(t, s, tokend.Resource{Type: tokend.ResourceSandbox, AccountID: a.ID, ProjectID: p.ID, Name: "T"})
	d := newResource(t, s, tokend.Resource{Type: tokend.ResourceDomain, AccountID: a.ID, Name: "example.com"})
	capture := func(sandbox int64, size int, at time.Time) (int64, string) {
		e := &tokend.StoredEmail{AccountID: a.ID, SandboxID: sandbox, MailFrom: "a@x.test", To: tokend.Address{Email: "u@example.org"},
			Subject: "s", Raw: make([]byte, size), Size: size, CreatedAt: at, UpdatedAt: at}
		m := storeEmail(t, s, e, "u@example.org", "v@example.org")
		return e.ID, m[0].ID
	}
	usage := func(sandbox int64) tokend.SandboxUsage {
		var u tokend.SandboxUsage
		read(t, s, func(tx tokend.Tx) error {
			var err error
			u, err = tx.SandboxUsage(ctx, sandbox)
			return err
		})
		return u
	}
	want := func(sandbox int64, emails int, bytes int64) {
		t.Helper()
		if got := usage(sandbox); got != (tokend.SandboxUsage{Emails: emails, Bytes: bytes}) {
			t.Errorf("usage of sandbox %d = %+v, want %d emails, %d bytes", sandbox, got, emails, bytes)
		}
	}
	listed := func(sandbox int64) []int64 {
		var out []int64
		read(t, s, func(tx tokend.Tx) error {
			got, err := tx.SandboxEmails(ctx, sandbox, tokend.SandboxQuery{})
			for _, e := range got {
				out = append(out, e.ID)
			}
			return err
		})
		return out
	}
	evict := func(emails int, bytes int64) tokend.SandboxUsage {
		var freed tokend.SandboxUsage
		write(t, s, func(tx tokend.Tx) error {
			var err error
			freed, err = tx.EvictSandboxEmails(ctx, sb.ID, emails, bytes)
			return err
		})
		return freed
	}

	want(sb.ID, 0, 0)
	var ids []int64
	var first string
	for i, size := range []int{10, 20, 30, 40, 50} {
		id, msg := capture(sb.ID, size, t0)
		ids = append(ids, id)
		if i == 0 {
			first = msg
		}
	}
	capture(other.ID, 7, t0)
	storeEmail(t, s, &tokend.StoredEmail{AccountID: a.ID, DomainID: d.ID, MailFrom: "a@example.com", Raw: make([]byte, 100), Size: 100,
		CreatedAt: t0, UpdatedAt: t0}, "b@example.org")
	want(sb.ID, 5, 150)
	want(other.ID, 1, 7)

	write(t, s, func(tx tokend.Tx) error { return tx.DeleteEmail(ctx, ids[1]) })
	want(sb.ID, 4, 130)

	if freed := evict(1, 0); freed != (tokend.SandboxUsage{Emails: 1, Bytes: 10}) {
		t.Errorf("evicting one email freed %+v, want the oldest (10 bytes)", freed)
	}
	read(t, s, func(tx tokend.Tx) error {
		if _, err := tx.Message(ctx, first); tokend.ErrorCode(err) != tokend.ENOTFOUND {
			t.Errorf("a message of an evicted email: %v", err)
		}
		return nil
	})
	if freed := evict(0, 35); freed != (tokend.SandboxUsage{Emails: 2, Bytes: 70}) {
		t.Errorf("evicting 35 bytes freed %+v, want the two oldest (30 and 40 bytes)", freed)
	}
	if got := listed(sb.ID); fmt.Sprint(got) != fmt.Sprint([]int64{ids[4]}) {
		t.Errorf("after evictions the sandbox lists %v, want only the newest %d", got, ids[4])
	}
	want(sb.ID, 1, 50)
	if freed := evict(0, 0); freed != (tokend.SandboxUsage{}) {
		t.Errorf("evicting nothing freed %+v", freed)
	}
	if freed := evict(5, 1000); freed != (tokend.SandboxUsage{Emails: 1, Bytes: 50}) {
		t.Errorf("evicting more than the sandbox holds freed %+v, want all of it", freed)
	}
	want(sb.ID, 0, 0)
	if freed := evict(1, 1); freed != (tokend.SandboxUsage{}) {
		t.Errorf("evicting from an empty sandbox freed %+v", freed)
	}
	want(other.ID, 1, 7)

	// Retention: captured mail older than the cutoff goes, oldest first, at
	// most limit at a time; live mail and newer mail stay.
	old1, _ := capture(sb.ID, 1, t0.Add(-3*time.Hour))
	old2, _ := capture(other.ID, 2, t0.Add(-2*time.Hour))
	recent, _ := capture(sb.ID, 4, t0.Add(-time.Minute))
	prune := func(limit int) int64 {
		var n int64
		write(t, s, func(tx tokend.Tx) error {
			var err error
			n, err = tx.DeleteCapturedEmailsBefore(ctx, t0.Add(-time.Hour), limit)
			return err
		})
		return n
	}
	if n := prune(1); n != 1 {
		t.Errorf("pruning one deleted %d", n)
	}
	if got := listed(sb.ID); fmt.Sprint(got) != fmt.Sprint([]int64{recent}) {
		t.Errorf("after pruning the oldest (%d), sandbox lists %v, want %d", old1, got, recent)
	}
	if n := prune(10); n != 1 {
		t.Errorf("pruning the rest deleted %d, want 1 (%d)", n, old2)
	}
	if n := prune(10); n != 0 {
		t.Errorf("pruning again deleted %d", n)
	}
	want(sb.ID, 1, 4)
	want(other.ID, 1, 7)
	var live int64
	write(t, s, func(tx tokend.Tx) error {
		var err error
		live, err = tx.DeleteEmailsBefore(ctx, t0.Add(time.Hour), 1000)
		return err
	})
	if live != 0 {
		t.Errorf("the live purge deleted %d emails; its live email still waits", live)
	}

	// With its sandbox, or its project, the usage goes too.
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteResource(ctx, tokend.ResourceSandbox, other.ID) })
	want(other.ID, 0, 0)
	write(t, s, func(tx tokend.Tx) error { return tx.DeleteResource(ctx, tokend.ResourceProject, p.ID) })
	want(sb.ID, 0, 0)
	p2 := newResource(t, s, tokend.Resource{Type: tokend.ResourceProject, AccountID: a.ID, Name: "P2"})
	sb2 := newResource(t, s, tokend.Resource{Type: tokend.ResourceSandbox, AccountID: a.ID, ProjectID: p2.ID, Name: "S2"})
	capture(sb2.ID, 3, t0)
	want(sb2.ID, 1, 3)
}
