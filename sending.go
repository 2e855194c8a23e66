package tokend

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// EmailJob is the outbox kind of email deliveries: one job per recipient,
// whose payload is the message id.
const EmailJob = "email"

// MailerOptions configure a Mailer.
type MailerOptions struct {
	// Deliver says that live email can be delivered: a relay is configured.
	// Without it, live sends with a valid email are EUNAVAILABLE and nothing
	// is queued; invalid emails get their own errors first.
	Deliver bool
	// Notify is called after a commit that queued live mail, so that the
	// dispatcher starts at once; may be nil.
	Notify func()
	// NoticeFrom is the sender of tokend's own mail (a domain's setup
	// instructions, say); no-reply@localhost.localdomain if empty.
	NoticeFrom Address
	// NotifyNotice is called after a commit that queued tokend's own mail;
	// may be nil.
	NotifyNotice func()
	// Observe is told, after each commit, how many messages (recipients) were
	// accepted for delivery ("accepted") or captured into a sandbox
	// ("captured"), and how many captured emails were deleted to keep a
	// sandbox within its quota ("evicted") or past the capture retention
	// ("expired"); may be nil.
	Observe func(event string, n int)
	// Verifier holds the message allowances every send spends from: give
	// the one that authenticates requests, so that the allowance is counted
	// where the plan limit is (across instances when it shares its limits).
	// Nil: a Verifier of the Mailer's own, counting in this process.
	Verifier *Verifier
	// SandboxQuota is the quota of each sandbox of an account on a plan;
	// nil means Plan.SandboxQuota.
	SandboxQuota func(Plan) SandboxQuota
	// CaptureRetention is how long captured mail is kept (PruneCaptured
	// deletes what is older); 0 means DefaultCaptureRetention.
	CaptureRetention time.Duration
	// BounceDomain, when set, gives every live message a return path of its
	// own on it (see ReturnPath), so that bounces that come back by mail
	// name the message; otherwise the envelope sender is the email's own.
	BounceDomain string
}

// DefaultCaptureRetention is how long captured mail is kept by default.
const DefaultCaptureRetention = 30 * 24 * time.Hour

// Mailer is the sending capability: it applies the sending rules to a
// caller's email, writes what it accepts to the store in the transaction that
// answers (live mail together with its delivery jobs, test-key and sandbox
// mail captured into a sandbox), and serves the captured mail and the
// delivery state back. Live keys deliver; test keys never do.
type Mailer struct {
	svc     *Service
	store   Store
	compose Composer
	opts    MailerOptions
	signers sync.Map // domain id → crypto.Signer, opened once
}

// NewMailer returns the sending service over svc's store and keyring, and
// keeps the outbox's email jobs and message states in step.
func NewMailer(svc *Service, compose Composer, opts MailerOptions) *Mailer {
	if opts.Verifier == nil {
		opts.Verifier = NewVerifier(svc, VerifierOptions{Now: svc.opts.Now})
	}
	if opts.SandboxQuota == nil {
		opts.SandboxQuota = Plan.SandboxQuota
	}
	if opts.CaptureRetention <= 0 {
		opts.CaptureRetention = DefaultCaptureRetention
	}
	m := &Mailer{svc: svc, store: svc.store, compose: compose, opts: opts}
	svc.outbox.hook(EmailJob, jobHooks{retried: m.deferred, finished: m.finished})
	return m
}

// Sent is an accepted email: one message id per recipient, in the order To,
// Cc, Bcc.
type Sent struct {
	MessageIDs []string
	// Replayed says the send was made earlier under the same idempotency
	// key: this is its answer again, and nothing more was sent.
	Replayed bool
}

// BatchItem is one email of a batch, or the error that refused it before
// it reached the Mailer (a body that could not be read).
type BatchItem struct {
	Email *Email
	Err   error
}

// BatchResult is the outcome of one email of a batch: Sent, or the error
// that refused it.
type BatchResult struct {
	Sent *Sent
	Err  error
}

var errNoRelay = Errorf(EUNAVAILABLE, "Email delivery is not configured on this server: start tokend with --smtp-relay smtp://[user:pass@]host:port "+
	"(or TOKEND_SMTP_RELAY) to deliver live email. Test keys and sandbox sends work without it.")

// Send accepts e from caller. A live key sends from a sending domain of its
// account on which it is admin (EFORBIDDEN otherwise, naming the domain) and
// its mail is queued for delivery; a test key follows the same rules and
// answers the same, but its mail is captured into the account's test-key
// sandbox and never delivered.
//
// Every send spends its recipients from the caller's message allowance (see
// Allowance), which it returns as the send left it.
func (m *Mailer) Send(ctx context.Context, caller *Token, e *Email, opts ...SendOption) (*Sent, Allowance, error) {
	res, a, err := m.send(ctx, caller, 0, []BatchItem{{Email: e}}, opts)
	if err != nil {
		return nil, a, err
	}
	return res[0].Sent, a, res[0].Err
}

// SendToSandbox captures e into a sandbox on which caller is admin (ENOTFOUND
// if the caller cannot read it, EFORBIDDEN if it only views it). Any sender
// address is accepted; nothing is delivered. It spends the message allowance
// as Send does.
func (m *Mailer) SendToSandbox(ctx context.Context, caller *Token, sandboxID int64, e *Email, opts ...SendOption) (*Sent, Allowance, error) {
	res, a, err := m.send(ctx, caller, sandboxID, []BatchItem{{Email: e}}, opts)
	if err != nil {
		return nil, a, err
	}
	return res[0].Sent, a, res[0].Err
}

// SendBatch accepts up to MaxBatchSize emails, each item laid over base. Each
// item succeeds or fails alone (an item that comes with an error keeps it);
// the error returned is for the whole batch (authentication, a sandbox the
// caller cannot use, delivery not configured, a message allowance that
// cannot cover every valid item's recipients). Accepted items are written in
// one transaction, and their recipients are what the batch spends of the
// allowance.
func (m *Mailer) SendBatch(ctx context.Context, caller *Token, sandboxID int64, base *Email, items []BatchItem, opts ...SendOption) ([]BatchResult, Allowance, error) {
	switch {
	case len(items) == 0:
		return nil, Allowance{}, Invalid("requests", "is required: a batch needs at least one request")
	case len(items) > MaxBatchSize:
		return nil, Allowance{}, Invalid("requests", fmt.Sprintf("has too many emails (maximum is %d)", MaxBatchSize))
	}
	if base == nil {
		base = &Email{}
	}
	merged := make([]BatchItem, len(items))
	for i, it := range items {
		merged[i] = BatchItem{Err: it.Err}
		if it.Err == nil {
			merged[i].Email = base.merge(it.Email)
		}
	}
	return m.send(ctx, caller, sandboxID, merged, opts)
}

// DefaultSender is the sender of a caller that names none: no-reply at the
// one sending domain it administers. None or several is EINVALID on "from",
// with reason "sender_required".
func (m *Mailer) DefaultSender(ctx context.Context, caller *Token) (Address, error) {
	var out Address
	err := m.store.Read(ctx, func(tx Tx) error {
		c, err := loadCatalog(ctx, tx, caller.AccountID)
		if err != nil {
			return err
		}
		domains := c.domainsAdministered(caller.Permissions)
		switch len(domains) {
		case 1:
			out = Address{Email: "no-reply@" + domains[0].Name}
			return nil
		case 0:
			return &Error{Code: EINVALID, Message: "Validation failed", Reason: "sender_required",
				Fields: FieldErrors{"from": {"is required: this token is not admin on any sending domain to send from"}}}
		}
		return &Error{Code: EINVALID, Message: "Validation failed", Reason: "sender_required",
			Fields: FieldErrors{"from": {fmt.Sprintf("is required: this token is admin on %d sending domains, so name the one to send from", len(domains))}}}
	})
	return out, err
}

// prepared is an email that passed validation and was rendered (or, from
// SMTP, submitted whole), ready for the sending rules and the store.
type prepared struct {
	email *Email // the email asked for through the API; nil for a submission
	env   envelope
	ids   []string // a message id per recipient
	raw   []byte
	err   error
}

// envelope is what the sending rules and the logs need of an email, however
// it came: the envelope sender and recipients, and the header fields shown
// in listings.
type envelope struct {
	mailFrom        string    // the envelope sender: From's address for the API
	from            Address   // the From header's mailbox
	rcpts           []Address // every recipient, in message id order
	subject         string
	category        string
	customVariables map[string]string
	messageID       string // the sender's own Message-ID, when it gave one
	textSize        int
	htmlSize        int
}

func emailEnvelope(e *Email) envelope {
	return envelope{mailFrom: e.From.Email, from: e.From, rcpts: e.Recipients(), subject: e.Subject, category: e.Category,
		customVariables: e.CustomVariables, textSize: len(e.Text), htmlSize: len(e.HTML)}
}

// send validates each email, spends the valid ones' recipients from the
// caller's message allowance, renders them outside any transaction, then
// applies the rules and stores what passes in one write transaction. What
// was spent but not stored is given back. Live mail without a relay is
// refused (errNoRelay) once validated: an invalid email gets its own error
// as with a relay, and a request with no valid email is answered as usual.
//
// Under an idempotency key (WithIdempotency), a send the account made under
// the same key within IdempotencyWindow is answered as it was, and nothing
// is spent or stored again; checked before anything else, and again in the
// write transaction, so that retries racing each other, on any instance,
// store once.
func (m *Mailer) send(ctx context.Context, caller *Token, sandboxID int64, emails []BatchItem, options []SendOption) ([]BatchResult, Allowance, error) {
	var o sendOptions
	for _, opt := range options {
		opt(&o)
	}
	if o.idem != nil {
		if prior, err := m.replay(ctx, caller, o.idem); err != nil || prior != nil {
			return prior, Allowance{}, err
		}
	}
	live := sandboxID == 0 && caller.Environment == Live
	preps := make([]prepared, len(emails))
	rcpts := 0
	for i, it := range emails {
		if preps[i].err = it.Err; it.Err != nil {
			continue
		}
		if preps[i].err = it.Email.Validate(); preps[i].err != nil {
			continue
		}
		preps[i].email = it.Email
		// One request is one transaction: bound what it may write.
		if rcpts += len(it.Email.Recipients()); rcpts > MaxRequestRecipients {
			return nil, Allowance{}, Invalid("requests", fmt.Sprintf("have too many recipients in all (maximum is %d a request)", MaxRequestRecipients))
		}
	}
	now := m.svc.now()
	// One request is one transaction: bound what it may write. What the
	// attachments alone will take, base64-encoded, is known before any
	// rendering: a request certain to go over is refused without it.
	render := func() error {
		tooLarge := Errorf(ETOOLARGE, "The emails of this request come to more than %d bytes (50 MiB) rendered: send fewer at a time", MaxRequestSize)
		least := 0
		for i := range preps {
			if p := &preps[i]; p.err == nil {
				for _, a := range p.email.Attachments {
					least += base64.StdEncoding.EncodedLen(len(a.Content))
				}
			}
		}
		if least > MaxRequestSize {
			return tooLarge
		}
		size := 0
		for i := range preps {
			if p := &preps[i]; p.err == nil {
				*p = m.render(p.email, now, live)
			}
			if size += len(preps[i].raw); size > MaxRequestSize {
				return tooLarge
			}
		}
		return nil
	}
	return m.commit(ctx, caller, sandboxID, live, preps, rcpts, &o, now, render)
}

// commit is the part of every send after its emails were read and
// validated: it spends their rcpts recipients from the caller's message
// allowance, has them rendered (render, which may be nil, runs after the
// allowance passed and outside any transaction), applies the sending rules
// and stores what passes in one write transaction, under o's idempotency key
// when it has one. What was spent but not stored is given back. Live mail
// without a relay is refused (errNoRelay).
func (m *Mailer) commit(ctx context.Context, caller *Token, sandboxID int64, live bool, preps []prepared, rcpts int, o *sendOptions,
	now time.Time, render func() error) (_ []BatchResult, allowance Allowance, _ error) {
	if live && !m.opts.Deliver && rcpts > 0 {
		return nil, Allowance{}, errNoRelay
	}
	if rcpts > 0 {
		var err error
		if allowance, err = m.opts.Verifier.spendMessages(ctx, caller, rcpts); err != nil {
			return nil, allowance, err
		}
	}
	stored := 0
	// What was spent but not stored goes back, and shows in the allowance returned.
	defer func() { m.opts.Verifier.refundMessages(ctx, caller, rcpts-stored, &allowance) }()
	if render != nil {
		if err := render(); err != nil {
			return nil, allowance, err
		}
	}
	results := make([]BatchResult, len(preps))
	var accepted, captured, evicted int
	var replayed []BatchResult
	err := m.svc.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		accepted, captured, evicted, replayed = 0, 0, 0, nil
		if o.idem != nil {
			prior, err := o.idem.prior(ctx, tx, caller, now)
			if err != nil || prior != nil {
				replayed = prior
				return err
			}
		}
		if err := m.accept(ctx, tx, caller, sandboxID, live, preps, results, &accepted, &captured, &evicted, now); err != nil {
			return err
		}
		// A send that stored nothing (every email refused) keeps no key:
		// its retry is tried afresh, so a refusal (a token that may not
		// send from the domain, say) never holds the key against one that may.
		if o.idem != nil && accepted+captured > 0 {
			return o.idem.save(ctx, tx, caller, results, now)
		}
		return nil
	})
	if err != nil {
		return nil, allowance, err
	}
	if replayed != nil {
		return replayed, allowance, nil // what was spent goes back: nothing was stored
	}
	stored = accepted + captured
	if accepted > 0 && m.opts.Notify != nil {
		m.opts.Notify()
	}
	if m.opts.Observe != nil {
		if accepted > 0 {
			m.opts.Observe("accepted", accepted)
		}
		if captured > 0 {
			m.opts.Observe("captured", captured)
		}
		if evicted > 0 {
			m.opts.Observe("evicted", evicted)
		}
	}
	return results, allowance, nil
}

// accept applies the sending rules to the prepared emails in tx, setting
// each one's result, and stores what passes: live mail with its delivery
// jobs, test-key mail captured. It counts what it accepted, captured and
// evicted to make room.
func (m *Mailer) accept(ctx context.Context, tx Tx, caller *Token, sandboxID int64, live bool, preps []prepared, results []BatchResult,
	accepted, captured, evicted *int, now time.Time) error {
	c, err := loadCatalog(ctx, tx, caller.AccountID)
	if err != nil {
		return err
	}
	target := sandboxID
	if sandboxID != 0 {
		sb, err := readableResource(ctx, tx, caller, ResourceSandbox, sandboxID)
		if err != nil {
			return err
		}
		if sb.Level != Admin {
			return Errorf(EFORBIDDEN, "You need admin access to sandbox %d to send to it", sandboxID)
		}
	}
	// First what passes the rules, then, for captured mail, room for
	// all of it, then the writes.
	sendable := map[int64]bool{} // by domain, read once a request
	domains := make([]Resource, len(preps))
	var passed []int
	var size SandboxUsage
	for i := range preps {
		p := &preps[i]
		results[i] = BatchResult{Err: p.err}
		if p.err != nil {
			continue
		}
		if sandboxID == 0 {
			d, err := c.sendingDomain(caller, &p.env)
			if err != nil {
				results[i].Err = err
				continue
			}
			if live {
				ok, known := sendable[d.ID]
				if !known {
					if ok, err = domainSendable(ctx, tx, d.ID); err != nil {
						return err
					}
					sendable[d.ID] = ok
				}
				if !ok {
					results[i].Err = domainNotVerified(d)
					continue
				}
			}
			domains[i] = d
		}
		passed = append(passed, i)
		size.Emails, size.Bytes = size.Emails+1, size.Bytes+int64(len(p.raw))
	}
	if len(passed) == 0 {
		return nil
	}
	if !live {
		if target == 0 {
			if target, err = m.captureSandbox(ctx, tx, caller, c); err != nil {
				return err
			}
		}
		if *evicted, err = m.makeRoom(ctx, tx, caller.AccountID, target, size); err != nil {
			return err
		}
	}
	for _, i := range passed {
		p := &preps[i]
		if err := m.store1(ctx, tx, caller, p, domains[i], target, now); err != nil {
			return err
		}
		results[i].Sent = &Sent{MessageIDs: p.ids}
		if live {
			*accepted += len(p.ids)
		} else {
			*captured += len(p.ids)
		}
	}
	return nil
}

// makeRoom makes room in sandboxID for adding emails of the given size, by
// deleting its oldest emails (in the caller's transaction, which holds the
// account, so that sends to one sandbox never see each other half done),
// and returns how many it deleted. Mail larger than the whole quota is
// ETOOLARGE: storing it would only delete it again.
func (m *Mailer) makeRoom(ctx context.Context, tx Tx, accountID, sandboxID int64, add SandboxUsage) (int, error) {
	a, err := tx.Account(ctx, accountID)
	if err != nil {
		return 0, err
	}
	q := m.opts.SandboxQuota(a.Plan)
	if add.Emails > q.Emails {
		return 0, Errorf(ETOOLARGE, "This request would capture %d emails into sandbox %d, which keeps at most %d (the %s plan's quota): send at most %d at a time",
			add.Emails, sandboxID, q.Emails, a.Plan, q.Emails)
	}
	if add.Bytes > q.Bytes {
		return 0, Errorf(ETOOLARGE, "The emails of this request come to %d bytes as captured; sandbox %d keeps at most %d bytes (the %s plan's quota): send less at a time",
			add.Bytes, sandboxID, q.Bytes, a.Plan)
	}
	u, err := tx.SandboxUsage(ctx, sandboxID)
	if err != nil {
		return 0, err
	}
	over := SandboxUsage{Emails: max(u.Emails+add.Emails-q.Emails, 0), Bytes: max(u.Bytes+add.Bytes-q.Bytes, 0)}
	if over.Emails == 0 && over.Bytes == 0 {
		return 0, nil
	}
	freed, err := tx.EvictSandboxEmails(ctx, sandboxID, over.Emails, over.Bytes)
	return freed.Emails, err
}

// pruneBatch is how many captured emails PruneCaptured deletes in one
// transaction, so that it never holds the database for long.
const pruneBatch = 200

// PruneCaptured deletes the captured mail older than the capture retention,
// a batch per transaction, and returns how many emails it deleted. Servers
// run it with the purge.
func (m *Mailer) PruneCaptured(ctx context.Context) (int64, error) {
	cutoff := m.svc.now().Add(-m.opts.CaptureRetention)
	var total int64
	defer func() {
		if total > 0 && m.opts.Observe != nil {
			m.opts.Observe("expired", int(total))
		}
	}()
	for {
		var n int64
		err := m.store.Write(ctx, func(tx Tx) error {
			var err error
			n, err = tx.DeleteCapturedEmailsBefore(ctx, cutoff, pruneBatch)
			return err
		})
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}

// CaptureRetention is how long captured mail is kept.
func (m *Mailer) CaptureRetention() time.Duration { return m.opts.CaptureRetention }

// render gives each recipient of e, a valid email, a message id and renders
// it. Live mail is rendered without a Message-ID: each recipient's delivery
// carries its own. Captured mail carries the first recipient's.
func (m *Mailer) render(e *Email, now time.Time, live bool) prepared {
	ids := newMessageIDs(len(e.Recipients()))
	msgID := ""
	if !live {
		msgID = RFCMessageID(ids[0], e.From.Domain())
	}
	raw, err := m.compose.Compose(e, now, msgID)
	if err != nil {
		return prepared{err: fmt.Errorf("compose email: %w", err)}
	}
	if len(raw) > MaxEmailSize {
		return prepared{err: Errorf(ETOOLARGE, "The email is %d bytes with its attachments encoded; the maximum is %d bytes (10 MiB)", len(raw), MaxEmailSize)}
	}
	return prepared{email: e, env: emailEnvelope(e), ids: ids, raw: raw}
}

func newMessageIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	return ids
}

// RFCMessageID is the Message-ID header value of a message id sent from domain.
func RFCMessageID(id, domain string) string { return "<" + id + "@" + domain + ">" }

// store1 writes one accepted email: its content, a message per recipient and,
// for live mail (no sandbox), a delivery job per recipient.
func (m *Mailer) store1(ctx context.Context, tx Tx, caller *Token, p *prepared, domain Resource, sandboxID int64, now time.Time) error {
	e := &p.env
	rcpts := e.rcpts
	se := &StoredEmail{
		AccountID: caller.AccountID, TokenID: caller.ID, DomainID: domain.ID, SandboxID: sandboxID,
		MailFrom: e.mailFrom, From: e.from, To: rcpts[0], Subject: e.subject, Category: e.category,
		CustomVariables: e.customVariables, MessageIDHeader: e.messageID, Raw: p.raw, Size: len(p.raw), TextSize: e.textSize, HTMLSize: e.htmlSize,
		CreatedAt: now, UpdatedAt: now,
	}
	state := MessageQueued
	if sandboxID != 0 {
		state = MessageCaptured
	}
	// Live mail is not relayed to a suppressed recipient: its message is
	// rejected, and the others of the email go as usual.
	var suppressed map[string]*Suppression
	if sandboxID == 0 {
		var err error
		if suppressed, err = suppressedRecipients(ctx, tx, caller.AccountID, domain.ID, rcpts); err != nil {
			return err
		}
	}
	msgs := make([]Message, len(rcpts))
	for i, r := range rcpts {
		msgs[i] = Message{ID: p.ids[i], AccountID: caller.AccountID, DomainID: domain.ID, Recipient: r.Email, State: state, CreatedAt: now, UpdatedAt: now}
		if suppressed[strings.ToLower(r.Email)] != nil {
			msgs[i].State = MessageSuppressed
		}
	}
	if err := tx.CreateEmail(ctx, se, msgs); err != nil {
		return err
	}
	if sandboxID != 0 {
		return nil
	}
	for _, msg := range msgs {
		if sp := suppressed[strings.ToLower(msg.Recipient)]; sp != nil {
			if err := recordEmailEvent(ctx, tx, &EmailEvent{MessageID: msg.ID, AccountID: msg.AccountID, Type: EmailReject, At: now,
				Details: EmailEventDetails{RejectReason: "Recipient in suppression list. Reason: " + string(sp.Type)}}, msg.DomainID); err != nil {
				return err
			}
			continue
		}
		if err := tx.EnqueueJob(ctx, &Job{Kind: EmailJob, Payload: []byte(msg.ID), NextAttemptAt: now, CreatedAt: now}); err != nil {
			return err
		}
	}
	return nil
}

// suppressedRecipients returns the suppressions that hold for mail from
// domainID to rcpts, by lower-case address.
func suppressedRecipients(ctx context.Context, tx Tx, accountID, domainID int64, rcpts []Address) (map[string]*Suppression, error) {
	emails := make([]string, len(rcpts))
	for i, r := range rcpts {
		emails[i] = strings.ToLower(r.Email)
	}
	list, err := tx.SuppressedAmong(ctx, accountID, domainID, emails)
	if err != nil || len(list) == 0 {
		return nil, err
	}
	out := make(map[string]*Suppression, len(list))
	for i := range list {
		out[list[i].Email] = &list[i]
	}
	return out, nil
}

// sendingDomain returns the sending domain an email is sent from: that of
// its From address, on which caller must be admin, and which its envelope
// sender must share. The answer is the same whether the domain is missing,
// of another account, or only viewed by the caller, so that it reveals
// nothing.
func (c *catalog) sendingDomain(caller *Token, env *envelope) (Resource, error) {
	name := env.from.Domain()
	if sender := (Address{Email: env.mailFrom}).Domain(); sender != name {
		return Resource{}, &Error{Code: EFORBIDDEN, Reason: ReasonSenderMismatch,
			Message: fmt.Sprintf("The envelope sender's domain (%s) and the From address's domain (%s) must be the same sending domain", sender, name)}
	}
	return c.adminDomain(caller, name)
}

// adminDomain returns the account's sending domain name if caller is admin
// on it, and otherwise an EFORBIDDEN error that says the same whatever the
// reason.
func (c *catalog) adminDomain(caller *Token, name string) (Resource, error) {
	for _, d := range c.domains {
		if d.Name == name && caller.LevelOn(d) == Admin {
			return d, nil
		}
	}
	return Resource{}, Errorf(EFORBIDDEN, "Sending from %s needs a token with admin access to the sending domain %s of this account", name, name)
}

// domainSendable reports whether live keys may send from a domain: DNS
// verified it, or an operator trusts it. It reads the store, never DNS.
func domainSendable(ctx context.Context, tx Tx, domainID int64) (bool, error) {
	st, err := tx.DomainDNS(ctx, domainID)
	if ErrorCode(err) == ENOTFOUND {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return st.Sendable(), nil
}

// Names of what captureSandbox creates.
const (
	captureProjectName = "Test keys"
	captureSandboxName = "Test key sends"
)

// captureSandbox returns the sandbox that catches the account's test-key
// sends, creating it (in a project of its own) on first use or after it was
// deleted.
func (m *Mailer) captureSandbox(ctx context.Context, tx Tx, caller *Token, c *catalog) (int64, error) {
	id, err := tx.CaptureSandbox(ctx, caller.AccountID)
	if err != nil {
		return 0, err
	}
	if _, ok := c.resolve(ResourceSandbox, id); ok {
		return id, nil
	}
	now := m.svc.now()
	project := Resource{Type: ResourceProject, AccountID: caller.AccountID, Name: captureProjectName, CreatedAt: now}
	if err := tx.CreateResource(ctx, &project); err != nil {
		return 0, err
	}
	sandbox := Resource{Type: ResourceSandbox, AccountID: caller.AccountID, ProjectID: project.ID, Name: captureSandboxName, CreatedAt: now}
	if err := tx.CreateResource(ctx, &sandbox); err != nil {
		return 0, err
	}
	if err := tx.SetCaptureSandbox(ctx, caller.AccountID, sandbox.ID); err != nil {
		return 0, err
	}
	c.byKey[resourceKey{ResourceProject, project.ID}] = project
	c.byKey[resourceKey{ResourceSandbox, sandbox.ID}] = sandbox
	for _, r := range []Resource{project, sandbox} {
		if err := m.svc.auditResource(ctx, tx, caller, ActionResourceCreated, r); err != nil {
			return 0, err
		}
	}
	return sandbox.ID, nil
}

// Delivery is what the dispatcher needs to deliver one message: the envelope
// (with the message's own return path when bounces come back by mail), the
// email as stored (without a Message-ID, unless its sender gave one: then
// MessageID names the message for the copy that has none), and the DKIM
// key of its domain.
type Delivery struct {
	MessageID string
	Domain    string
	MailFrom  string
	Recipient string
	Raw       []byte
	Selector  string
	Signer    crypto.Signer
}

// ErrNothingToDeliver means a delivery job's message is gone (its account
// deleted) or already final: the job is done.
var ErrNothingToDeliver = errors.New("nothing to deliver")

// Delivery returns the delivery a job asks for.
func (m *Mailer) Delivery(ctx context.Context, j Job) (*Delivery, error) {
	var d *Delivery
	err := m.store.Read(ctx, func(tx Tx) error {
		msg, err := tx.Message(ctx, string(j.Payload))
		if ErrorCode(err) == ENOTFOUND {
			return ErrNothingToDeliver
		} else if err != nil {
			return err
		}
		if msg.State != MessageQueued && msg.State != MessageDeferred {
			return ErrNothingToDeliver
		}
		e, err := tx.Email(ctx, msg.EmailID)
		if err != nil {
			return err
		}
		key, err := tx.DomainKey(ctx, e.DomainID)
		if err != nil {
			return fmt.Errorf("dkim key of domain %d: %w", e.DomainID, err)
		}
		signer, err := m.signer(key)
		if err != nil {
			return err
		}
		d = &Delivery{MessageID: msg.ID, Domain: key.Domain, MailFrom: e.MailFrom, Recipient: msg.Recipient,
			Raw: e.Raw, Selector: key.Selector, Signer: signer}
		if m.opts.BounceDomain != "" {
			d.MailFrom = ReturnPath(msg.ID, m.opts.BounceDomain)
		}
		return nil
	})
	return d, err
}

func (m *Mailer) signer(k *DomainKey) (crypto.Signer, error) {
	if s, ok := m.signers.Load(k.DomainID); ok {
		return s.(crypto.Signer), nil
	}
	s, err := m.svc.opts.Keyring.signer(k)
	if err != nil {
		return nil, err
	}
	m.signers.Store(k.DomainID, s)
	return s, nil
}
