// Package smtpd is tokend's SMTP side: the submission server, where apps
// send mail with an API token as the password under the same rules as the
// send API, and the MX that takes bounces back. go-smtp speaks the
// protocol; this package maps its sessions to the domain (tokend.Verifier,
// tokend.Mailer, tokend.Bounces) and the domain's errors to replies.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/mail"
)

// Username is the SMTP username of every token: the password is the token.
const Username = "api"

// Defaults of the limits.
const (
	DefaultMaxConnsPerIP       = 20
	DefaultMaxConns            = 1000
	DefaultIdle                = 2 * time.Minute
	DefaultMessagesPerSession  = 1000
	DefaultCommandBytes        = 1 << 20
	DefaultAuthFailuresSession = 3
)

// Options configure a Server; zero values take the defaults.
type Options struct {
	Verifier *tokend.Verifier
	Service  *tokend.Service // where usage is counted
	Mailer   *tokend.Mailer
	// TLS is the certificate STARTTLS and implicit TLS present. Required:
	// AUTH is offered only over TLS.
	TLS *tls.Config
	// Hostname is the name the server greets with.
	Hostname string
	Logger   *slog.Logger
	// MaxConns and MaxConnsPerIP bound open connections, in all and per
	// client address; Idle is how long a session may send nothing.
	MaxConns, MaxConnsPerIP int
	Idle                    time.Duration
	// MessagesPerSession bounds the messages of one session; CommandBytes
	// the bytes it may send outside messages' data (its commands).
	MessagesPerSession int
	CommandBytes       int64
	// Observe is told what happens, for metrics: ("connection", "refused:"+
	// reason), ("auth", outcome), ("message", "accepted"|"refused"); may be nil.
	Observe func(what, result string)
}

func (o *Options) defaults() {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxConnsPerIP <= 0 {
		o.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if o.Idle <= 0 {
		o.Idle = DefaultIdle
	}
	if o.MessagesPerSession <= 0 {
		o.MessagesPerSession = DefaultMessagesPerSession
	}
	if o.CommandBytes <= 0 {
		o.CommandBytes = DefaultCommandBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observe == nil {
		o.Observe = func(string, string) {}
	}
	if o.Hostname == "" {
		o.Hostname = "localhost"
	}
}

// Server is the submission server: STARTTLS on plain listeners, TLS from
// the first byte on implicit ones, AUTH PLAIN and LOGIN once TLS is up.
type Server struct {
	opts Options
	smtp *smtp.Server

	mu        sync.Mutex
	listeners []*limitListener
	count     *counter // connections, shared by all the listeners
}

// NewServer returns a submission server; serve it with Serve or ServeTLS.
func NewServer(opts Options) *Server {
	opts.defaults()
	s := &Server{opts: opts, count: newCounter()}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = opts.Hostname
	srv.TLSConfig = opts.TLS
	srv.ReadTimeout = opts.Idle
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = tokend.MaxEmailSize
	srv.MaxRecipients = tokend.MaxRecipientsPerField
	srv.MaxLineLength = MaxLineLength
	srv.ErrorLog = logLogger{opts.Logger}
	s.smtp = srv
	return s
}

// Serve answers SMTP on ln, with STARTTLS, until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, false) }

// ServeTLS answers SMTP over TLS from the first byte on ln, until Shutdown.
func (s *Server) ServeTLS(ln net.Listener) error { return s.serve(ln, true) }

func (s *Server) serve(ln net.Listener, implicit bool) error {
	var implicitTLS *tls.Config
	if implicit {
		implicitTLS = s.opts.TLS
	}
	ll := newLimitListener(ln, &limits{maxConns: s.opts.MaxConns, maxPerIP: s.opts.MaxConnsPerIP, commandBytes: s.opts.CommandBytes,
		idle: s.opts.Idle, refused: func(reason string) { s.opts.Observe("connection", "refused:"+reason) }}, s.count, implicitTLS)
	s.mu.Lock()
	s.listeners = append(s.listeners, ll)
	s.mu.Unlock()
	var l net.Listener = ll
	if implicit {
		l = tls.NewListener(ll, s.opts.TLS)
	}
	err := s.smtp.Serve(l)
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown stops taking connections, ends idle sessions, and waits for the
// messages being sent to be answered, until ctx ends; then it closes what
// is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	lls := s.listeners
	s.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- s.smtp.Shutdown(ctx) }()
	for _, ll := range lls {
		ll.drain()
	}
	select {
	case err := <-done:
		if errors.Is(err, smtp.ErrServerClosed) {
			return nil
		}
		if err != nil {
			s.smtp.Close()
		}
		return err
	case <-ctx.Done():
		s.smtp.Close()
		return ctx.Err()
	}
}

// session is one SMTP session of the submission server.
type session struct {
	srv    *Server
	sc     *smtp.Conn
	conn   *conn // nil when go-smtp hides it (never in practice)
	client string

	token    *tokend.Token
	password string // the token, to verify each message again: a revocation ends the session's sending
	failures int

	from     string
	rcpts    []string
	open     bool // a transaction was charged and not yet answered
	messages int
	senders  map[string]bool // envelope sender domains checked in this session
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	sess := &session{srv: s, sc: c, client: clientIP(c.Conn().RemoteAddr())}
	sess.conn = bind(c)
	return sess, nil
}

// bind returns the *conn under go-smtp's connection c, and tells it the
// connection its replies are written on (go-smtp makes a session once a
// TLS handshake is complete, never during one).
func bind(c *smtp.Conn) *conn {
	var wc *conn
	switch nc := c.Conn().(type) {
	case *conn:
		wc = nc
	case *tls.Conn:
		wc, _ = nc.NetConn().(*conn)
	}
	if wc != nil {
		wc.setTop(c.Conn())
	}
	return wc
}

// Replies of the submission server.
var (
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required: AUTH with username " + Username + " and an API token as the password"}
	errBadAuth      = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid: the username is " + Username + " and the password an API token"}
	errAuthTemp     = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure; try again later"}
	errTooManyAuth  = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed authentications; closing"}
	errTooManyMsgs  = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many messages in one session; reconnect to send more"}
	errTokenGone    = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "This session's token is no longer valid; reconnect with a valid token"}
)

func (x *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (x *session) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return x.authFailed(tokend.VerifyInvalid)
			}
			return x.authenticate(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{authenticate: x.authenticate}, nil
	}
	return nil, &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Unsupported authentication mechanism: use PLAIN or LOGIN"}
}

// authenticate verifies a username and password as the API verifies a
// token, in the same failed-authentication throttle: an unknown, expired or
// forged token, one used from outside its allowed IPs, and a wrong username
// all get the same 535.
func (x *session) authenticate(username, password string) error {
	ctx := context.Background()
	if !strings.EqualFold(username, Username) {
		// Spend a failure of the address's budget as a bad token would.
		if _, err := x.srv.opts.Verifier.Throttle().Fail(ctx, x.client); err != nil {
			return x.authFailed(tokend.VerifyThrottled)
		}
		return x.authFailed(tokend.VerifyInvalid)
	}
	d := x.srv.opts.Verifier.Authenticate(ctx, tokend.Credential{APIToken: []string{password}}, x.client)
	if d.Err != nil {
		return x.authFailed(d.Outcome)
	}
	x.token, x.password = d.Token, password
	x.srv.opts.Observe("auth", "ok")
	return nil
}

func (x *session) authFailed(outcome tokend.VerifyOutcome) error {
	x.srv.opts.Observe("auth", outcomeName(outcome))
	switch outcome {
	case tokend.VerifyThrottled, tokend.VerifyError:
		return errAuthTemp
	}
	if x.failures++; x.failures >= DefaultAuthFailuresSession {
		x.closeSoon()
		return errTooManyAuth
	}
	return errBadAuth
}

// closeSoon ends the session after the reply being written.
func (x *session) closeSoon() {
	if x.conn != nil {
		x.conn.endAfterReply()
	}
}

func outcomeName(o tokend.VerifyOutcome) string {
	switch o {
	case tokend.VerifyMissing:
		return "missing"
	case tokend.VerifyExpired:
		return "expired"
	case tokend.VerifyThrottled:
		return "throttled"
	case tokend.VerifyIPRefused:
		return "ip_not_allowed"
	case tokend.VerifyError:
		return "error"
	case tokend.VerifyRateLimited:
		return "rate_limited"
	case tokend.VerifiedOK:
		return "ok"
	}
	return "invalid"
}

// Mail starts a message: one request of the token's limits and its plan
// limit, as one API call is, and an early word on the envelope sender.
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.token == nil {
		return errAuthRequired
	}
	if x.messages >= x.srv.opts.MessagesPerSession {
		x.closeSoon()
		return errTooManyMsgs
	}
	ctx := context.Background()
	d := x.srv.opts.Verifier.Verify(ctx, tokend.Credential{APIToken: []string{x.password}}, x.client)
	if d.Token == nil {
		if d.Outcome == tokend.VerifyError {
			return reply(d.Err, 0)
		}
		x.token = nil
		x.closeSoon()
		return errTokenGone
	}
	x.token, x.open = d.Token, true // from here on, the message counts in the usage
	if d.Err != nil {
		x.record(d.Err)
		return reply(d.Err, d.RetryAfter)
	}
	domain := strings.ToLower(tokend.Address{Email: from}.Domain())
	if !x.senders[domain] {
		if err := x.srv.opts.Mailer.CheckSender(ctx, x.token, from); err != nil {
			x.record(err)
			return reply(err, 0)
		}
		if x.senders == nil {
			x.senders = map[string]bool{}
		}
		x.senders[domain] = true
	}
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if x.token == nil {
		return errAuthRequired
	}
	if !tokend.ValidAddress(to) {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: fmt.Sprintf("%q is not a valid recipient address", to)}
	}
	x.rcpts = append(x.rcpts, to)
	return nil
}

// Data reads the message and submits it. 250 is answered only once the
// message is stored with its delivery jobs: what tokend accepted survives a
// crash.
func (x *session) Data(r io.Reader) error {
	if x.token == nil {
		return errAuthRequired
	}
	if x.conn != nil {
		x.conn.inData(true)
		defer x.conn.inData(false)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			x.record(&tokend.Error{Code: tokend.ETOOLARGE})
			return smtp.ErrDataTooLarge
		}
		return dataError(x.conn, x.srv.opts.Logger, x.srv.opts.Idle, err)
	}
	x.messages++
	sub := &tokend.Submission{MailFrom: x.from, Recipients: x.rcpts, Raw: raw}
	if p, err := mail.Parse(raw); err == nil {
		sub.TextSize, sub.HTMLSize = len(p.Text), len(p.HTML)
	}
	sent, allowance, err := x.srv.opts.Mailer.Submit(context.Background(), x.token, sub)
	x.record(err)
	if err != nil {
		x.srv.opts.Observe("message", "refused")
		return reply(err, allowance.RetryAfter)
	}
	x.srv.opts.Observe("message", "accepted")
	msg := "OK: queued as " + strings.Join(sent.MessageIDs, " ")
	if len(sent.MessageIDs) > 3 {
		msg = fmt.Sprintf("OK: queued as %s and %d more", sent.MessageIDs[0], len(sent.MessageIDs)-1)
	}
	if sent.Replayed {
		msg = "OK: already accepted under this Idempotency-Key as " + sent.MessageIDs[0]
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: msg}
}

// record counts the open transaction in the token's usage, by outcome.
func (x *session) record(err error) {
	if !x.open || x.token == nil {
		return
	}
	x.open = false
	x.srv.opts.Service.RecordOutcome(x.token.ID, outcome(err))
}

func outcome(err error) tokend.Outcome {
	switch tokend.ErrorCode(err) {
	case "":
		return tokend.OutcomeSuccess
	case tokend.ERATELIMITED:
		return tokend.OutcomeRateLimited
	case tokend.EINTERNAL, tokend.EUNAVAILABLE:
		return tokend.OutcomeServerError
	}
	return tokend.OutcomeClientError
}

func (x *session) Reset() {
	x.record(&tokend.Error{Code: tokend.EINVALID}) // a message abandoned after MAIL
	x.from, x.rcpts = "", nil
}

func (x *session) Logout() error {
	// After STARTTLS go-smtp ends the session made before it, on the TLS
	// connection whose handshake is complete.
	bind(x.sc)
	x.Reset()
	x.password = ""
	return nil
}

// reply maps a domain error to an SMTP reply: the one function that does,
// so that every refusal of the API has its SMTP form. retry is how long the
// client should wait, for refusals of a limit.
func reply(err error, retry time.Duration) *smtp.SMTPError {
	var e *tokend.Error
	if !errors.As(err, &e) {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary server error; try again later"}
	}
	msg := e.Sentences()
	switch e.Code {
	case tokend.EFORBIDDEN, tokend.ENOTFOUND:
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: msg}
	case tokend.EUNAUTHORIZED:
		return errTokenGone
	case tokend.ERATELIMITED:
		msg = retryIn(msg, retry)
		if e.Reason == tokend.ReasonMessagesLimited {
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: msg}
		}
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: msg}
	case tokend.ETOOLARGE:
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: msg}
	case tokend.EINVALID:
		if e.Reason == tokend.ReasonOverMessageLimit {
			// Permanent: as it is, the message can never pass. (552 for too
			// many recipients is read as temporary, RFC 5321 4.5.3.1.10.)
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 5, 3}, Message: msg}
		}
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: msg}
	case tokend.EUNAVAILABLE:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 5}, Message: msg}
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary server error; try again later"}
}

// retryIn makes a refusal of a limit say when to retry, in seconds (SMTP
// clients get no Retry-After header), unless its message already does.
func retryIn(msg string, retry time.Duration) string {
	if retry <= 0 || strings.Contains(msg, "retry in ") {
		return msg
	}
	return strings.TrimSuffix(msg, ".") + fmt.Sprintf("; retry in %d s", tokend.RetrySeconds(retry))
}

// MaxLineLength is the longest line, CRLF included, of a command or of a
// message's data. RFC 5321 asks for 1,000 at least; real mail (HTML from
// some generators) has longer lines, which are taken up to this.
const MaxLineLength = 2000

var (
	errLineTooLong = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: fmt.Sprintf("Line too long (max %d bytes including CRLF); message refused, closing connection", MaxLineLength)}
	errReadFailed = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 0}, Message: "Error reading the message; closing connection"}
)

// dataError is the reply to a message whose data could not be read whole,
// and the session's last: after a timeout, a line too long or a broken
// connection, what comes next cannot be trusted to be a command. The error
// itself (socket addresses and all) goes to the log, never to the client.
func dataError(c *conn, logger *slog.Logger, idle time.Duration, err error) error {
	if c != nil {
		c.endAfterReply()
	}
	var ne net.Error
	switch {
	case errors.Is(err, smtp.ErrTooLongLine):
		return errLineTooLong
	case errors.As(err, &ne) && ne.Timeout():
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
			Message: fmt.Sprintf("Idle timeout: no data for %s; closing connection", idle)}
	}
	logger.Debug("smtp: reading a message's data", "err", err)
	return errReadFailed
}

// loginServer is the server side of AUTH LOGIN: username, then password,
// each asked for and answered in base64 (go-smtp does the encoding).
type loginServer struct {
	authenticate func(username, password string) error
	username     string
	step         int
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step = 1
		if response != nil { // an initial response is the username
			l.username, l.step = string(response), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.authenticate(l.username, string(response))
	}
	return nil, false, errors.New("unexpected response")
}

// logLogger is go-smtp's logger on slog, at debug: what it logs are
// clients' network errors.
type logLogger struct{ l *slog.Logger }

func (g logLogger) Printf(format string, v ...any) { g.l.Debug("smtp: " + fmt.Sprintf(format, v...)) }
func (g logLogger) Println(v ...any)               { g.l.Debug("smtp: " + fmt.Sprintln(v...)) }
