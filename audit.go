package tokend

import (
	"context"
	"encoding/base64"
	"maps"
	"strconv"
	"time"
)

// AuditEvent records one change: who made it, to what, from where. It never
// holds a token value.
type AuditEvent struct {
	ID           int64
	AccountID    int64 // 0 for events that concern no single account
	At           time.Time
	Actor        string // the acting token's name, the user's "Name (email)", or the operator for the CLI
	ActorTokenID int64  // 0 when the actor is not a token
	Action       string
	TargetType   string
	TargetID     int64
	ClientAddr   string
	Details      map[string]any
}

// Audit actions.
const (
	ActionTokenCreated    = "token.created"
	ActionTokenUpdated    = "token.updated"
	ActionTokenReset      = "token.reset"
	ActionTokenDeleted    = "token.deleted"
	ActionResourceCreated = "resource.created"
	ActionResourceRenamed = "resource.renamed"
	ActionResourceDeleted = "resource.deleted"
	ActionAccountCreated  = "account.created"
	ActionPlanChanged     = "plan.changed"
	ActionUserCreated     = "user.created"
	ActionUserDeleted     = "user.deleted"
	ActionUserPasswordSet = "user.password_set"
	ActionSetupLinkIssued = "user.setup_link_issued"
	ActionAlertPrefix     = "alert."
	maxAuditPage          = 200
	defaultAuditPage      = 50
)

type clientAddrKey struct{}

// WithClientAddr returns ctx carrying the address of the client a request came
// from, which audit events record.
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

// ClientAddr returns the client address carried by ctx, or "local" when none is.
func ClientAddr(ctx context.Context) string {
	if v, ok := ctx.Value(clientAddrKey{}).(string); ok && v != "" {
		return v
	}
	return "local"
}

// audit appends an event made by caller (nil for the operator) in tx.
func (s *Service) audit(ctx context.Context, tx Tx, accountID int64, caller *Token, operator, action, targetType string, targetID int64, details map[string]any) error {
	e := &AuditEvent{AccountID: accountID, At: s.now(), Actor: operator, Action: action,
		TargetType: targetType, TargetID: targetID, ClientAddr: ClientAddr(ctx), Details: details}
	switch {
	case caller != nil && caller.Operator != "":
		e.Actor = caller.Operator
		e.Details = maps.Clone(details)
		if e.Details == nil {
			e.Details = map[string]any{}
		}
		e.Details["via"] = "cli"
	case caller != nil:
		e.Actor, e.ActorTokenID = caller.Name, caller.ID
	}
	return tx.AddAuditEvent(ctx, e)
}

// RecordEvent appends an event that is not a change made by a caller, such as
// an alert, and enqueues the jobs it calls for (a webhook delivery, say) in
// the same transaction: the event is recorded with its follow-up work or not
// at all.
func (s *Service) RecordEvent(ctx context.Context, e *AuditEvent, jobs ...*Job) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	if e.ClientAddr == "" {
		e.ClientAddr = ClientAddr(ctx)
	}
	return s.store.Write(ctx, func(tx Tx) error { return s.recordEvent(ctx, tx, e, jobs...) })
}

// recordEvent is RecordEvent inside a transaction.
func (s *Service) recordEvent(ctx context.Context, tx Tx, e *AuditEvent, jobs ...*Job) error {
	if err := tx.AddAuditEvent(ctx, e); err != nil {
		return err
	}
	for _, j := range jobs {
		if j.NextAttemptAt.IsZero() {
			j.NextAttemptAt = s.now()
		}
		if j.CreatedAt.IsZero() {
			j.CreatedAt = s.now()
		}
		if err := tx.EnqueueJob(ctx, j); err != nil {
			return err
		}
	}
	return nil
}

// NoteNetwork records that a token was used from a client network, reporting
// whether the network is new for it and how many it had been used from before.
func (s *Service) NoteNetwork(ctx context.Context, tokenID int64, network string) (isNew bool, before int, err error) {
	err = s.store.Write(ctx, func(tx Tx) error {
		isNew, before, err = tx.AddTokenNetwork(ctx, tokenID, network, s.now())
		return err
	})
	return isNew, before, err
}

// AuditPage is one page of the audit log, newest first. NextCursor is "" on the last page.
type AuditPage struct {
	Events     []AuditEvent
	NextCursor string
}

// AuditLog returns a page of the caller's account's audit log; only account
// admins may read it (EFORBIDDEN). cursor is "" or a NextCursor from an
// earlier page; limit is clamped to 1..200 (0: 50).
func (s *Service) AuditLog(ctx context.Context, caller *Token, cursor string, limit int) (*AuditPage, error) {
	if !caller.IsAccountAdmin() {
		return nil, Errorf(EFORBIDDEN, "Only an account admin can read the audit log")
	}
	var before int64
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err == nil {
			before, err = strconv.ParseInt(string(b), 10, 64)
		}
		if err != nil || before <= 0 {
			return nil, Invalid("cursor", "is not a cursor this API returned")
		}
	}
	switch {
	case limit < 0:
		return nil, Invalid("limit", "must be between 1 and 200")
	case limit == 0:
		limit = defaultAuditPage
	case limit > maxAuditPage:
		limit = maxAuditPage
	}
	page := &AuditPage{}
	err := s.store.Read(ctx, func(tx Tx) error {
		events, err := tx.AuditEvents(ctx, caller.AccountID, before, limit+1)
		if err != nil {
			return err
		}
		if len(events) > limit {
			events = events[:limit]
			last := events[len(events)-1].ID
			page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(last, 10)))
		}
		page.Events = events
		return nil
	})
	return page, err
}
