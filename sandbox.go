package tokend

import (
	"context"
	"strings"
)

// SandboxPageSize is how many captured emails a sandbox listing returns.
const SandboxPageSize = 30

// SandboxMessages lists the emails captured in a sandbox the caller can read
// (ENOTFOUND otherwise), newest first: SandboxPageSize of them before
// lastID when it is set, otherwise page (from 1), matching search in the
// subject or the first recipient when it is set.
func (m *Mailer) SandboxMessages(ctx context.Context, caller *Token, sandboxID int64, page int, lastID int64, search string) ([]StoredEmail, error) {
	q := SandboxQuery{BeforeID: lastID, Search: strings.TrimSpace(search), Limit: SandboxPageSize}
	if lastID == 0 && page > 1 {
		q.Offset = (page - 1) * SandboxPageSize
	}
	var out []StoredEmail
	err := m.store.Read(ctx, func(tx Tx) error {
		if _, err := readableResource(ctx, tx, caller, ResourceSandbox, sandboxID); err != nil {
			return err
		}
		var err error
		out, err = tx.SandboxEmails(ctx, sandboxID, q)
		return err
	})
	return out, err
}

// SandboxMessage returns one captured email, with its raw content, from a
// sandbox the caller can read; ENOTFOUND otherwise.
func (m *Mailer) SandboxMessage(ctx context.Context, caller *Token, sandboxID, id int64) (*StoredEmail, error) {
	var out *StoredEmail
	err := m.store.Read(ctx, func(tx Tx) error {
		var err error
		out, err = capturedEmail(ctx, tx, caller, sandboxID, id)
		return err
	})
	return out, err
}

// MarkSandboxMessage sets a captured email's read flag. It changes the
// sandbox, so it needs admin on it (ENOTFOUND if the caller cannot read it,
// EFORBIDDEN if it only views it): viewers only read.
func (m *Mailer) MarkSandboxMessage(ctx context.Context, caller *Token, sandboxID, id int64, read bool) (*StoredEmail, error) {
	var out *StoredEmail
	err := m.svc.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		e, err := adminCapturedEmail(ctx, tx, caller, sandboxID, id, "mark its messages read")
		if err != nil {
			return err
		}
		now := m.svc.now()
		if err := tx.MarkEmailRead(ctx, id, read, now); err != nil {
			return err
		}
		e.IsRead, e.UpdatedAt = read, now
		out = e
		return nil
	})
	return out, err
}

// DeleteSandboxMessage deletes a captured email from a sandbox the caller is
// admin on (ENOTFOUND if it cannot read it, EFORBIDDEN if it only views it)
// and returns it as it was.
func (m *Mailer) DeleteSandboxMessage(ctx context.Context, caller *Token, sandboxID, id int64) (*StoredEmail, error) {
	var out *StoredEmail
	err := m.svc.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		e, err := adminCapturedEmail(ctx, tx, caller, sandboxID, id, "delete its messages")
		if err != nil {
			return err
		}
		out = e
		return tx.DeleteEmail(ctx, id)
	})
	return out, err
}

// capturedEmail loads email id if it is in sandboxID and the caller can read
// that sandbox; ENOTFOUND otherwise.
func capturedEmail(ctx context.Context, tx Tx, caller *Token, sandboxID, id int64) (*StoredEmail, error) {
	if _, err := readableResource(ctx, tx, caller, ResourceSandbox, sandboxID); err != nil {
		return nil, err
	}
	e, err := tx.Email(ctx, id)
	if ErrorCode(err) == ENOTFOUND || err == nil && (e.SandboxID != sandboxID || e.AccountID != caller.AccountID) {
		return nil, errNotFound
	}
	return e, err
}

// adminCapturedEmail is capturedEmail for a change: the caller must also be
// admin on the sandbox (EFORBIDDEN otherwise, once the email is known to be there).
func adminCapturedEmail(ctx context.Context, tx Tx, caller *Token, sandboxID, id int64, verb string) (*StoredEmail, error) {
	e, err := capturedEmail(ctx, tx, caller, sandboxID, id)
	if err != nil {
		return nil, err
	}
	if sb, _ := tx.Resource(ctx, ResourceSandbox, sandboxID); sb == nil || caller.LevelOn(*sb) != Admin {
		return nil, Errorf(EFORBIDDEN, "You need admin access to sandbox %d to %s", sandboxID, verb)
	}
	return e, nil
}
