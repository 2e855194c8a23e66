package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// AuditEvent is one entry of the account's audit log.
type AuditEvent struct {
	ID int64     `json:"id"`
	At time.Time `json:"at"`
	// Action is such as token.created, token.updated, token.reset,
	// token.deleted, resource.created, resource.renamed, resource.deleted,
	// plan.changed, or alert.* for unusual activity.
	Action string `json:"action"`
	// Actor is the acting token's name, a dashboard user's "Name (email)",
	// or the operator at the command line.
	Actor string `json:"actor"`
	// ActorTokenID is the acting token, 0 when it was not a token.
	ActorTokenID int64  `json:"actor_token_id"`
	TargetType   string `json:"target_type"` // such as "api_token", "project"
	TargetID     int64  `json:"target_id"`   // 0 when none
	ClientAddr   string `json:"client_addr"`
	// Details are the action's own facts (what changed from what to what).
	Details map[string]any `json:"details"`
}

// AuditPage is one page of the audit log, newest first.
type AuditPage struct {
	Events []AuditEvent `json:"data"`
	// NextCursor fetches the next (older) page; "" on the last page.
	NextCursor string `json:"next_cursor"`
}

// AuditLogOptions choose a page of the audit log.
type AuditLogOptions struct {
	// Cursor is "" for the newest page or an earlier page's NextCursor.
	Cursor string
	// Limit is the page size, 1 to 200 (more is taken as 200); 0 means
	// tokend's default, 50.
	Limit int
}

// AuditLog returns one page of the account's audit log. Only account
// admins may read it (403 otherwise); a cursor tokend did not issue is a 422.
func (c *Client) AuditLog(ctx context.Context, opts AuditLogOptions) (*AuditPage, error) {
	q := url.Values{}
	if opts.Cursor != "" {
		q.Set("cursor", opts.Cursor)
	}
	if opts.Limit != 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	var out AuditPage
	if err := c.do(ctx, http.MethodGet, "/api/audit_log", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AuditEvents walks the whole audit log, newest first, fetching pages of
// pageSize (0: tokend's default) as it goes. An error is yielded once, with
// a zero event, and ends the walk.
//
//	for e, err := range c.AuditEvents(ctx, 100) {
//		if err != nil { return err }
//		...
//	}
func (c *Client) AuditEvents(ctx context.Context, pageSize int) iter.Seq2[AuditEvent, error] {
	return func(yield func(AuditEvent, error) bool) {
		opts := AuditLogOptions{Limit: pageSize}
		for {
			page, err := c.AuditLog(ctx, opts)
			if err != nil {
				yield(AuditEvent{}, err)
				return
			}
			for _, e := range page.Events {
				if !yield(e, nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			opts.Cursor = page.NextCursor
		}
	}
}
