package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/tokend/tokend"
)

// Relay delivers messages to one SMTP relay, keeping a few connections open
// between deliveries. Over smtp:// it upgrades with STARTTLS whenever the relay
// offers it, and once it has seen the offer it never falls back to plain
// text; smtps:// is TLS from the first byte. Credentials are only ever sent
// over TLS, or to a relay on loopback.
type Relay struct {
	addr     string // host:port
	host     string
	implicit bool // smtps://
	user     string
	pass     string
	tls      *tls.Config
	helo     string
	maxIdle  int
	redacted string

	starttls atomic.Int32 // tlsUnknown, tlsOffered or tlsAbsent
	mu       sync.Mutex
	idle     []*smtp.Client
}

const (
	tlsUnknown int32 = iota
	tlsOffered
	tlsAbsent
)

// RelayOptions tune a Relay; zero values take the defaults.
type RelayOptions struct {
	// TLS is the client configuration for STARTTLS and smtps:// (default: the
	// system roots, which SSL_CERT_FILE can point elsewhere).
	TLS *tls.Config
	// MaxIdle bounds the connections kept open between deliveries (default 4).
	MaxIdle int
	// Hostname is the name tokend gives in EHLO (default: the machine's).
	Hostname string
}

// ParseRelay reads a relay URL: smtp://[user:pass@]host[:port] (port 587 by
// default) or smtps://[user:pass@]host[:port] (port 465).
func ParseRelay(raw string, opts RelayOptions) (*Relay, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("relay URL: %w", redactErr(err))
	}
	r := &Relay{tls: opts.TLS, maxIdle: opts.MaxIdle, helo: opts.Hostname}
	port := ""
	switch u.Scheme {
	case "smtp":
		port = "587"
	case "smtps":
		port, r.implicit = "465", true
	default:
		return nil, fmt.Errorf("relay URL %s: the scheme must be smtp:// or smtps://", u.Redacted())
	}
	if u.Hostname() == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, fmt.Errorf("relay URL %s: want smtp[s]://[user:pass@]host[:port]", u.Redacted())
	}
	if u.Port() != "" {
		port = u.Port()
	}
	r.host = u.Hostname()
	r.addr = net.JoinHostPort(r.host, port)
	if u.User != nil {
		r.user = u.User.Username()
		r.pass, _ = u.User.Password()
	}
	r.redacted = u.Scheme + "://" + r.addr
	if r.user != "" {
		r.redacted = u.Scheme + "://" + r.user + ":xxxxx@" + r.addr
	}
	if r.tls == nil {
		r.tls = &tls.Config{}
	}
	r.tls = r.tls.Clone()
	if r.tls.ServerName == "" {
		r.tls.ServerName = r.host
	}
	if r.maxIdle <= 0 {
		r.maxIdle = 4
	}
	if r.helo == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			r.helo = h
		} else {
			r.helo = "localhost"
		}
	}
	return r, nil
}

// redactErr drops a URL parse error's copy of the URL, which may hold a password.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// String is the relay's URL without its password.
func (r *Relay) String() string { return r.redacted }

// PermanentError is a refusal the relay will repeat: a 5xx reply, whose
// Err is a *tokend.RelayReply.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Send delivers msg from from to one recipient. A 5xx reply is a
// *PermanentError; a 4xx reply a *tokend.RelayReply; anything else (a
// network failure) may pass too.
func (r *Relay) Send(ctx context.Context, from, to string, msg []byte) error {
	for attempt := 0; ; attempt++ {
		c, pooled, err := r.client(ctx)
		if err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { c.Close() }) // unblocks a hung relay
		err = transact(c, from, to, msg)
		usable := stop()
		var se *smtp.SMTPError
		switch {
		case err == nil:
			if usable {
				r.release(c)
			}
			return nil // the relay has the message, whatever happens to the connection now
		case errors.As(err, &se) && se.Code == 421 && pooled && attempt == 0:
			c.Close() // the relay is closing a connection kept idle too long
			continue
		case errors.As(err, &se):
			if usable && c.Reset() == nil {
				r.release(c)
			} else {
				c.Close()
			}
			reply := &tokend.RelayReply{Code: se.Code, Status: enhancedStatus(se.EnhancedCode), Message: se.Message, Deferred: se.Code < 500}
			if !reply.Deferred {
				return &PermanentError{reply}
			}
			return reply
		default:
			c.Close()
			// A kept connection the relay closed meanwhile: try once on a fresh one.
			if pooled && attempt == 0 && ctx.Err() == nil {
				continue
			}
			if ctx.Err() != nil {
				return fmt.Errorf("relay %s: %w", r.addr, ctx.Err())
			}
			return fmt.Errorf("relay %s: %w", r.addr, err)
		}
	}
}

// enhancedStatus writes a reply's enhanced status code (RFC 3463) as
// "5.1.1", or "" when the reply had none.
func enhancedStatus(c smtp.EnhancedCode) string {
	if c == (smtp.EnhancedCode{}) || c == smtp.NoEnhancedCode || c[0] <= 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
}

func transact(c *smtp.Client, from, to string, msg []byte) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// client returns a kept connection or a new one.
func (r *Relay) client(ctx context.Context) (*smtp.Client, bool, error) {
	r.mu.Lock()
	if n := len(r.idle); n > 0 {
		c := r.idle[n-1]
		r.idle = r.idle[:n-1]
		r.mu.Unlock()
		return c, true, nil
	}
	r.mu.Unlock()
	c, err := r.dial(ctx)
	return c, false, err
}

func (r *Relay) release(c *smtp.Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.idle) < r.maxIdle {
		r.idle = append(r.idle, c)
		return
	}
	c.Close()
}

// Close closes the kept connections.
func (r *Relay) Close() error {
	r.mu.Lock()
	idle := r.idle
	r.idle = nil
	r.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
	return nil
}

func (r *Relay) connect(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		return nil, fmt.Errorf("relay %s: %w", r.addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if r.implicit {
		tc := tls.Client(conn, r.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("relay %s: TLS: %w", r.addr, err)
		}
		conn = tc
	}
	return conn, nil
}

// dial opens and sets up a connection: EHLO, STARTTLS when offered, AUTH.
// The whole setup is bounded by ctx: a relay that accepts the connection and
// then says nothing is given up on when ctx ends, as go-smtp sets deadlines
// of its own on every command.
func (r *Relay) dial(ctx context.Context) (*smtp.Client, error) {
	for {
		conn, err := r.connect(ctx)
		if err != nil {
			return nil, err
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		c, again, err := r.setup(conn)
		if !stop() && err == nil && c != nil {
			c.Close()
			err = ctx.Err()
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("relay %s: %w (%v)", r.addr, ctx.Err(), err)
		case again:
			continue // the relay offers STARTTLS: from now on every connection takes it
		}
		return c, err
	}
}

// setup greets, secures and authenticates a new connection. again asks for
// a new connection: this one learned that the relay offers STARTTLS.
func (r *Relay) setup(conn net.Conn) (c *smtp.Client, again bool, err error) {
	secure := r.implicit
	switch {
	case r.implicit || r.starttls.Load() == tlsAbsent:
		c = smtp.NewClient(conn)
		if err := c.Hello(r.helo); err != nil {
			c.Close()
			return nil, false, fmt.Errorf("relay %s: EHLO: %w", r.addr, err)
		}
	case r.starttls.Load() == tlsOffered:
		if c, err = smtp.NewClientStartTLS(conn, r.tls); err != nil {
			return nil, false, fmt.Errorf("relay %s: STARTTLS: %w", r.addr, err)
		}
		if err := c.Hello(r.helo); err != nil { // after TLS, with tokend's own name
			c.Close()
			return nil, false, fmt.Errorf("relay %s: EHLO: %w", r.addr, err)
		}
		secure = true
	default: // first contact: see whether the relay offers STARTTLS
		c = smtp.NewClient(conn)
		if err := c.Hello(r.helo); err != nil {
			c.Close()
			return nil, false, fmt.Errorf("relay %s: EHLO: %w", r.addr, err)
		}
		if ok, _ := c.Extension("STARTTLS"); ok {
			c.Close()
			r.starttls.Store(tlsOffered)
			return nil, true, nil
		}
		r.starttls.Store(tlsAbsent)
	}
	if r.user != "" {
		if !secure && !loopback(r.host) {
			c.Close()
			return nil, false, fmt.Errorf("relay %s offers no TLS, and tokend will not send its credentials in clear: use smtps:// or a relay with STARTTLS", r.addr)
		}
		if !c.SupportsAuth(sasl.Plain) {
			c.Close()
			return nil, false, fmt.Errorf("relay %s does not offer AUTH PLAIN", r.addr)
		}
		if err := c.Auth(sasl.NewPlainClient("", r.user, r.pass)); err != nil {
			c.Close()
			return nil, false, fmt.Errorf("relay %s: authentication failed: %w", r.addr, err)
		}
	}
	c.CommandTimeout = time.Minute // each command's own bound, under the attempt's
	conn.SetDeadline(time.Time{})
	return c, false, nil
}

func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
