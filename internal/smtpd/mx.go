package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
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

// MXOptions configure an MX; zero values take the defaults.
type MXOptions struct {
	Bounces *tokend.Bounces
	// TLS, when set, is offered with STARTTLS (senders of bounces use it
	// when they can; nothing requires it).
	TLS      *tls.Config
	Hostname string
	Logger   *slog.Logger
	// MaxConns, MaxConnsPerIP and Idle as for the submission server.
	MaxConns, MaxConnsPerIP int
	Idle                    time.Duration
	// Observe is told ("connection", "refused:"+reason) and ("bounce",
	// "recorded"|"refused"|"unknown_recipient"); may be nil.
	Observe func(what, result string)
}

// maxBounceRecipients bounds the return paths one bounce may be sent to.
const maxBounceRecipients = 100

// MX takes bounces for the bounce domain: mail to the return path of a
// message tokend sent, and nothing else: no AUTH, no relaying, no other
// recipients, no message that is not a bounce.
type MX struct {
	opts MXOptions
	smtp *smtp.Server

	mu        sync.Mutex
	listeners []*limitListener
	count     *counter
}

// NewMX returns an MX; serve it with Serve.
func NewMX(opts MXOptions) *MX {
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxConnsPerIP <= 0 {
		opts.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if opts.Idle <= 0 {
		opts.Idle = DefaultIdle
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Observe == nil {
		opts.Observe = func(string, string) {}
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	m := &MX{opts: opts, count: newCounter()}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &mxSession{mx: m, sc: c, conn: bind(c)}, nil
	}))
	srv.Domain = opts.Hostname
	srv.TLSConfig = opts.TLS
	srv.ReadTimeout = opts.Idle
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = tokend.MaxEmailSize + 1<<20 // a bounce may quote the whole message
	srv.MaxRecipients = maxBounceRecipients
	srv.MaxLineLength = MaxLineLength
	// AUTH reaches the session, before STARTTLS as after, and is refused
	// there the same way: there is no AUTH here, TLS or not.
	srv.AllowInsecureAuth = true
	srv.ErrorLog = logLogger{opts.Logger}
	m.smtp = srv
	return m
}

// Serve answers SMTP on ln until Shutdown.
func (m *MX) Serve(ln net.Listener) error {
	ll := newLimitListener(ln, &limits{maxConns: m.opts.MaxConns, maxPerIP: m.opts.MaxConnsPerIP, commandBytes: DefaultCommandBytes,
		idle: m.opts.Idle, refused: func(reason string) { m.opts.Observe("connection", "refused:"+reason) }}, m.count, nil)
	m.mu.Lock()
	m.listeners = append(m.listeners, ll)
	m.mu.Unlock()
	err := m.smtp.Serve(ll)
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown stops as Server.Shutdown does.
func (m *MX) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	lls := m.listeners
	m.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- m.smtp.Shutdown(ctx) }()
	for _, ll := range lls {
		ll.drain()
	}
	select {
	case err := <-done:
		if errors.Is(err, smtp.ErrServerClosed) {
			return nil
		}
		if err != nil {
			m.smtp.Close()
		}
		return err
	case <-ctx.Done():
		m.smtp.Close()
		return ctx.Err()
	}
}

type mxSession struct {
	mx    *MX
	sc    *smtp.Conn
	conn  *conn
	rcpts []bounceRcpt
}

// bounceRcpt is a return path a bounce was sent to: the message it names,
// and that message's recipient.
type bounceRcpt struct{ id, recipient string }

var (
	errRelayDenied  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied: this server only takes bounces for its own return paths"}
	errNoMailbox    = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such return path"}
	errNotABounce   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Only bounces (delivery status notifications) are accepted here"}
	errMXTemporary  = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary server error; try again later"}
	errMXNoAuthHere = &smtp.SMTPError{Code: 502, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No authentication here: this server only takes bounces"}
)

func (x *mxSession) AuthMechanisms() []string { return nil }

func (x *mxSession) Auth(string) (sasl.Server, error) { return nil, errMXNoAuthHere }

func (x *mxSession) Mail(string, *smtp.MailOptions) error { return nil }

func (x *mxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	domain := tokend.Address{Email: to}.Domain()
	if !strings.EqualFold(domain, x.mx.opts.Bounces.Domain()) {
		x.mx.opts.Observe("bounce", "relay_denied")
		return errRelayDenied
	}
	id, recipient, err := x.mx.opts.Bounces.Recipient(context.Background(), to)
	switch {
	case tokend.ErrorCode(err) == tokend.ENOTFOUND:
		x.mx.opts.Observe("bounce", "unknown_recipient")
		return errNoMailbox
	case err != nil:
		x.mx.opts.Logger.Error("smtp mx: looking up a return path", "err", err)
		return errMXTemporary
	}
	x.rcpts = append(x.rcpts, bounceRcpt{id: id, recipient: recipient})
	return nil
}

// Data records what the bounce says about each message it was sent for,
// and answers 250 once that is stored.
func (x *mxSession) Data(r io.Reader) error {
	if x.conn != nil {
		x.conn.inData(true)
		defer x.conn.inData(false)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			return smtp.ErrDataTooLarge
		}
		return dataError(x.conn, x.mx.opts.Logger, x.mx.opts.Idle, err)
	}
	b, err := mail.ParseBounce(raw)
	if err != nil {
		x.mx.opts.Observe("bounce", "refused")
		return errNotABounce
	}
	ctx := context.Background()
	for _, rc := range x.rcpts {
		rep := pickReport(b, rc.recipient)
		err := x.mx.opts.Bounces.Record(ctx, rc.id, tokend.BounceReport{Action: rep.Action, Status: rep.Status, Code: rep.Code,
			Diagnostic: rep.Diagnostic, RemoteMTA: rep.RemoteMTA})
		if err != nil {
			x.mx.opts.Logger.Error("smtp mx: recording a bounce", "message_id", rc.id, "err", err)
			return errMXTemporary
		}
	}
	x.mx.opts.Observe("bounce", "recorded")
	return nil
}

// pickReport chooses what a bounce says about the message sent to
// recipient: the report on that recipient, else the first failure or delay
// it reports (a relay may rewrite addresses), else its first report.
func pickReport(b *mail.Bounce, recipient string) mail.BounceRecipient {
	for _, r := range b.Recipients {
		if strings.EqualFold(r.Recipient, recipient) {
			return r
		}
	}
	for _, r := range b.Recipients {
		if r.Action == "failed" || r.Action == "delayed" {
			return r
		}
	}
	if len(b.Recipients) > 0 {
		return b.Recipients[0]
	}
	return mail.BounceRecipient{}
}

func (x *mxSession) Reset() { x.rcpts = nil }
func (x *mxSession) Logout() error {
	bind(x.sc) // after STARTTLS: the TLS connection
	return nil
}
