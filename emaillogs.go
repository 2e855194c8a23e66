package tokend

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EmailLogs serve what became of each message sent through the sending
// routes: one entry per recipient, with its delivery state and its events,
// for the account's people and tokens as their access allows. Create it
// with NewEmailLogs.
type EmailLogs struct {
	svc       *Service
	retention time.Duration
}

// DefaultEmailLogRetention is how long email logs are kept by default.
const DefaultEmailLogRetention = 30 * 24 * time.Hour

// NewEmailLogs returns the email logs of svc's accounts, kept for
// retention (DefaultEmailLogRetention if 0).
func NewEmailLogs(svc *Service, retention time.Duration) *EmailLogs {
	if retention <= 0 {
		retention = DefaultEmailLogRetention
	}
	return &EmailLogs{svc: svc, retention: retention}
}

// Retention is how long email logs are kept.
func (l *EmailLogs) Retention() time.Duration { return l.retention }

// MessageLog is what is known of one message: the email it belongs to,
// where delivery to its recipient stands, and what happened to it.
type MessageLog struct {
	Message
	Email  StoredEmail  // without its raw content
	Domain string       // the sending domain (the sender's domain)
	Events []EmailEvent // oldest first, starting with EmailAccepted
}

// RFCMessageID is the Message-ID header the message went out with: the
// sender's own, or the one tokend gave it.
func (l *MessageLog) RFCMessageID() string {
	if l.Email.MessageIDHeader != "" {
		return l.Email.MessageIDHeader
	}
	return RFCMessageID(l.ID, l.Email.From.Domain())
}

// Captured reports whether the message was captured into a sandbox (a test
// key's send) rather than sent.
func (l *MessageLog) Captured() bool { return l.Email.SandboxID != 0 }

// Pages of email logs.
const (
	LogPageSize = 50
	// LogCountCap bounds total_count: a listing counts the matching
	// messages up to it, as a search engine does, so that a count never
	// costs more than a bounded scan.
	LogCountCap = 10_000
)

// LogQuery selects email logs. Build it with the filters of NewLogFilter;
// EmailLogs.List sets what the caller may see.
type LogQuery struct {
	SentAfter, SentBefore time.Time // zero: unbounded
	Filters               []LogFilter
	// SearchAfter continues a listing after the message a page ended with
	// (a next_page_cursor); List resolves it to After.
	SearchAfter string
	After       *LogCursor
	Limit       int
	// Visibility: every message of the account (All), or those sent from
	// DomainIDs and those the token TokenID sent itself.
	All       bool
	DomainIDs []int64
	TokenID   int64
}

// LogCursor is where a page of email logs ended: its last message, which
// listings order by time, then email, then message id, newest first.
type LogCursor struct {
	CreatedAt time.Time
	EmailID   int64
	MessageID string
}

// String is the cursor as next_page_cursor gives it: the last message's
// id, as Mailtrap's is.
func (c LogCursor) String() string { return c.MessageID }

func validMessageID(s string) bool {
	return s != "" && len(s) <= 64 && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
	})
}

// LogField is what a filter compares.
type LogField string

// The fields stores filter on.
const (
	LogTo       LogField = "to"       // the recipient, case-insensitive
	LogFrom     LogField = "from"     // the sender's address, case-insensitive
	LogSubject  LogField = "subject"  // case-insensitive
	LogResponse LogField = "response" // the last relay reply or error, case-insensitive
	LogCategory LogField = "category" // exact
	LogState    LogField = "state"    // MessageState values
	LogDomain   LogField = "domain"   // sending domain ids, as decimal
	LogEvent    LogField = "event"    // the message has an event of one of the types
	LogConstant LogField = "constant" // matches every message (Values nil) or none (Negate)
)

// LogOp is how a filter compares.
type LogOp string

// Filter operations. Text comparisons of case-insensitive fields get
// lower-case values.
const (
	LogEqual   LogOp = "equal"   // the field is one of Values
	LogContain LogOp = "contain" // the field contains one of Values
	LogEmpty   LogOp = "empty"   // the field is empty
)

// LogFilter is one condition of a LogQuery; Negate turns it around.
type LogFilter struct {
	Field  LogField
	Op     LogOp
	Negate bool
	Values []string
}

// Mailtrap's statuses of a message, and the states each names.
var logStatuses = map[string][]MessageState{
	"delivered":     {MessageDelivered},
	"not_delivered": {MessageFailed},
	"enqueued":      {MessageQueued, MessageDeferred},
	"opted_out":     {MessageSuppressed},
	"captured":      {MessageCaptured},
}

// LogStatus is Mailtrap's status of a message in state s.
func LogStatus(s MessageState) string {
	for status, states := range logStatuses {
		if slices.Contains(states, s) {
			return status
		}
	}
	return string(s)
}

// logEventTypes are the event types a filter may name: Mailtrap's, of
// which tokend records delivery, soft_bounce, bounce and reject.
var logEventTypes = []string{"delivery", "open", "click", "bounce", "spam", "unsubscribe", "soft_bounce", "reject", "suspension"}

// maxFilterValues bounds the values of one filter.
const maxFilterValues = 100

// NewLogFilter reads one of Mailtrap's email log filters: field with
// operator and values, as filters[field][operator] and filters[field][value]
// give them. Unknown fields and operators, and values that cannot match the
// field, are EINVALID, naming filters[field].
func NewLogFilter(field, operator string, values []string) (LogFilter, error) {
	name := "filters[" + field + "]"
	if len(values) > maxFilterValues {
		return LogFilter{}, Invalid(name, fmt.Sprintf("has too many values (maximum is %d)", maxFilterValues))
	}
	for _, v := range values {
		if len(v) > 1000 {
			return LogFilter{}, Invalid(name, "has a value that is too long (maximum is 1000 bytes)")
		}
	}
	badOp := func(ops ...string) error {
		return Invalid(name+"[operator]", "must be one of "+strings.Join(ops, ", "))
	}
	needValues := func(f LogFilter) (LogFilter, error) {
		if len(f.Values) == 0 {
			return LogFilter{}, Invalid(name+"[value]", "is required")
		}
		return f, nil
	}
	switch field {
	case "to", "from", "subject", "email_service_provider_response":
		f := LogFilter{Field: LogField(field)}
		if field == "email_service_provider_response" {
			f.Field = LogResponse
		}
		for _, v := range values {
			f.Values = append(f.Values, strings.ToLower(v))
		}
		switch operator {
		case "ci_equal", "ci_not_equal":
			f.Op, f.Negate = LogEqual, operator == "ci_not_equal"
		case "ci_contain", "ci_not_contain":
			f.Op, f.Negate = LogContain, operator == "ci_not_contain"
		case "empty", "not_empty":
			if field != "subject" {
				return LogFilter{}, badOp("ci_contain", "ci_not_contain", "ci_equal", "ci_not_equal")
			}
			return LogFilter{Field: LogSubject, Op: LogEmpty, Negate: operator == "not_empty"}, nil
		default:
			if field == "subject" {
				return LogFilter{}, badOp("ci_contain", "ci_not_contain", "ci_equal", "ci_not_equal", "empty", "not_empty")
			}
			return LogFilter{}, badOp("ci_contain", "ci_not_contain", "ci_equal", "ci_not_equal")
		}
		return needValues(f)
	case "status", "category", "sending_domain_id", "sending_stream":
		if operator != "equal" && operator != "not_equal" {
			return LogFilter{}, badOp("equal", "not_equal")
		}
		f := LogFilter{Op: LogEqual, Negate: operator == "not_equal"}
		switch field {
		case "status":
			f.Field = LogState
			for _, v := range values {
				states, ok := logStatuses[v]
				if !ok {
					return LogFilter{}, Invalid(name+"[value]", "must be delivered, not_delivered, enqueued, opted_out or captured")
				}
				for _, s := range states {
					f.Values = append(f.Values, string(s))
				}
			}
		case "category":
			f.Field, f.Values = LogCategory, values
		case "sending_domain_id":
			f.Field = LogDomain
			for _, v := range values {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil || n <= 0 {
					return LogFilter{}, Invalid(name+"[value]", "must be sending domain ids")
				}
				f.Values = append(f.Values, strconv.FormatInt(n, 10))
			}
		case "sending_stream":
			// All of tokend's mail is transactional.
			for _, v := range values {
				if v != "transactional" && v != "bulk" {
					return LogFilter{}, Invalid(name+"[value]", "must be transactional or bulk")
				}
			}
			if len(values) == 0 {
				return LogFilter{}, Invalid(name+"[value]", "is required")
			}
			return LogFilter{Field: LogConstant, Negate: slices.Contains(values, "transactional") == f.Negate}, nil
		}
		return needValues(f)
	case "events":
		if operator != "include_event" && operator != "not_include_event" {
			return LogFilter{}, badOp("include_event", "not_include_event")
		}
		for _, v := range values {
			if !slices.Contains(logEventTypes, v) {
				return LogFilter{}, Invalid(name+"[value]", "must be event types: "+strings.Join(logEventTypes, ", "))
			}
		}
		return needValues(LogFilter{Field: LogEvent, Op: LogEqual, Negate: operator == "not_include_event", Values: values})
	case "opens_count", "clicks_count":
		// tokend tracks no opens or clicks: every message has 0 of them.
		if len(values) != 1 {
			return LogFilter{}, Invalid(name+"[value]", "must be one number")
		}
		n, err := strconv.ParseInt(values[0], 10, 64)
		if err != nil {
			return LogFilter{}, Invalid(name+"[value]", "must be a number")
		}
		var match bool
		switch operator {
		case "equal":
			match = n == 0
		case "greater_than":
			match = 0 > n
		case "less_than":
			match = 0 < n
		default:
			return LogFilter{}, badOp("equal", "greater_than", "less_than")
		}
		return LogFilter{Field: LogConstant, Negate: !match}, nil
	case "client_ip", "sending_ip", "recipient_mx", "email_service_provider":
		return LogFilter{}, Invalid(name, "is not recorded by tokend, so it cannot be filtered on")
	}
	return LogFilter{}, Invalid(name, "is not a filter: use sent_after, sent_before, to, from, subject, status, events, category, "+
		"sending_domain_id, sending_stream, email_service_provider_response, opens_count or clicks_count")
}

// LogPage is one page of email logs.
type LogPage struct {
	Messages []MessageLog
	// Total counts the messages the query selects, up to LogCountCap.
	Total int
	// Next continues the listing; nil on the last page.
	Next *LogCursor
}

// List returns a page of the account's email logs that the caller may see:
// every message to an account admin; otherwise those sent from a sending
// domain it can read, and those it sent itself. A caller that can read no
// sending domain is EFORBIDDEN. Pages are ordered newest first and hold
// still as new mail arrives: a listing continued with Next neither repeats
// nor skips a message.
func (l *EmailLogs) List(ctx context.Context, caller *Token, q LogQuery) (*LogPage, error) {
	if q.Limit <= 0 || q.Limit > LogPageSize {
		q.Limit = LogPageSize
	}
	if !q.SentAfter.IsZero() && !q.SentBefore.IsZero() && !q.SentAfter.Before(q.SentBefore) {
		return nil, Invalid("filters[sent_after]", "must be before filters[sent_before]")
	}
	var page *LogPage
	err := l.svc.store.Read(ctx, func(tx Tx) error {
		q.All, q.DomainIDs, q.TokenID = caller.IsAccountAdmin(), nil, caller.ID
		if !q.All {
			c, err := loadCatalog(ctx, tx, caller.AccountID)
			if err != nil {
				return err
			}
			for _, d := range c.domainsReadable(caller) {
				q.DomainIDs = append(q.DomainIDs, d.ID)
			}
			if len(q.DomainIDs) == 0 {
				return errNoDomainAccess("read its email logs")
			}
		}
		if q.SearchAfter != "" {
			msg, err := tx.Message(ctx, q.SearchAfter)
			if !validMessageID(q.SearchAfter) || ErrorCode(err) == ENOTFOUND || err == nil && msg.AccountID != caller.AccountID {
				return Invalid("search_after", "is not a message id of this account's logs: continue with the next_page_cursor of the previous page")
			} else if err != nil {
				return err
			}
			q.After = &LogCursor{CreatedAt: msg.CreatedAt, EmailID: msg.EmailID, MessageID: msg.ID}
		}
		want := q.Limit
		q.Limit++ // one more tells whether there is a next page
		msgs, err := tx.EmailLogs(ctx, caller.AccountID, q)
		if err != nil {
			return err
		}
		page = &LogPage{Messages: msgs}
		if len(msgs) > want {
			page.Messages = msgs[:want]
			last := page.Messages[want-1]
			page.Next = &LogCursor{CreatedAt: last.CreatedAt, EmailID: last.EmailID, MessageID: last.ID}
		}
		if err := attachEvents(ctx, tx, page.Messages); err != nil {
			return err
		}
		q.After, q.Limit = nil, 0
		page.Total, err = tx.CountEmailLogs(ctx, caller.AccountID, q, LogCountCap)
		return err
	})
	return page, err
}

// attachEvents gives each log its events, EmailAccepted first.
func attachEvents(ctx context.Context, tx Tx, logs []MessageLog) error {
	if len(logs) == 0 {
		return nil
	}
	ids := make([]string, len(logs))
	for i := range logs {
		ids[i] = logs[i].ID
	}
	events, err := tx.EmailEvents(ctx, ids)
	if err != nil {
		return err
	}
	for i := range logs {
		l := &logs[i]
		l.Domain = l.Email.From.Domain()
		l.Events = append([]EmailEvent{{MessageID: l.ID, AccountID: l.AccountID, Type: EmailAccepted, At: l.CreatedAt}}, events[l.ID]...)
	}
	return nil
}

// Message returns a message of the caller's account with its events, if the
// caller sent it or can read the sending domain it went out from (live
// mail) or the sandbox it was captured into; ENOTFOUND otherwise.
func (l *EmailLogs) Message(ctx context.Context, caller *Token, id string) (*MessageLog, error) {
	var out *MessageLog
	err := l.svc.store.Read(ctx, func(tx Tx) error {
		msg, err := tx.Message(ctx, id)
		if ErrorCode(err) == ENOTFOUND || err == nil && msg.AccountID != caller.AccountID {
			return errNotFound
		} else if err != nil {
			return err
		}
		e, err := tx.EmailInfo(ctx, msg.EmailID)
		if err != nil {
			return err
		}
		out = &MessageLog{Message: *msg, Email: *e}
		if err := l.mayRead(ctx, tx, caller, e); err != nil {
			return err
		}
		logs := []MessageLog{*out}
		if err := attachEvents(ctx, tx, logs); err != nil {
			return err
		}
		*out = logs[0]
		if e.DomainID == 0 {
			out.Domain = ""
		}
		return nil
	})
	return out, err
}

// mayRead is the rule of Message: the token that sent an email may follow
// it; others need read access to its sandbox (captured mail) or its domain
// (account admins keep seeing the mail of a domain deleted since).
func (l *EmailLogs) mayRead(ctx context.Context, tx Tx, caller *Token, e *StoredEmail) error {
	if caller.ID != 0 && e.TokenID == caller.ID {
		return nil
	}
	if e.SandboxID != 0 {
		_, err := readableResource(ctx, tx, caller, ResourceSandbox, e.SandboxID)
		if err == nil || e.DomainID == 0 {
			return err
		}
	}
	_, err := readableResource(ctx, tx, caller, ResourceDomain, e.DomainID)
	if ErrorCode(err) == ENOTFOUND && caller.IsAccountAdmin() {
		if _, rerr := tx.Resource(ctx, ResourceDomain, e.DomainID); ErrorCode(rerr) == ENOTFOUND {
			return nil
		}
	}
	return err
}

// pruneLogBatch is how many emails Prune deletes in one transaction.
const pruneLogBatch = 500

// Prune deletes the logs of live mail older than the retention, a batch per
// transaction, and returns how many emails it deleted. Mail still waiting
// for delivery is kept until it is done.
func (l *EmailLogs) Prune(ctx context.Context) (int64, error) {
	cutoff := l.svc.now().Add(-l.retention)
	var total int64
	for {
		var n int64
		err := l.svc.store.Write(ctx, func(tx Tx) error {
			var err error
			n, err = tx.DeleteEmailsBefore(ctx, cutoff, pruneLogBatch)
			return err
		})
		total += n
		if err != nil || n < pruneLogBatch {
			return total, err
		}
	}
}
