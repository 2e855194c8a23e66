package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mail is one message an SMTPServer accepted.
type Mail struct {
	From string
	To   []string
	Data []byte
	TLS  bool   // the session was encrypted
	User string // who authenticated, if anyone
}

// SMTPOptions configure an SMTPServer.
type SMTPOptions struct {
	// TLS, when set, is offered through STARTTLS, or from the first byte
	// with Implicit.
	TLS      *tls.Config
	Implicit bool
	// User and Password, when set, are required through AUTH PLAIN.
	User, Password string
	// Delay is how long the relay takes over each message it accepts.
	Delay time.Duration
}

// SMTPServer is a relay on 127.0.0.1 for tests: it records what it accepts,
// can be told to refuse, and can be stopped and started again on the same
// address, as a relay that goes down and comes back.
type SMTPServer struct {
	Addr string
	opts SMTPOptions

	mu      sync.Mutex
	mails   []Mail
	refusal *smtp.SMTPError
	byRcpt  map[string]*smtp.SMTPError
	srv     *smtp.Server
	ln      net.Listener
	arrived chan struct{}
}

// StartSMTP starts a relay on a free loopback port; it stops with the test.
func StartSMTP(t testing.TB, opts SMTPOptions) *SMTPServer {
	t.Helper()
	s := &SMTPServer{opts: opts, arrived: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *SMTPServer) serve(ln net.Listener) {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{s: s, conn: c}, nil
	}))
	srv.Domain = "relay.test"
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.MaxMessageBytes = 64 << 20
	srv.AllowInsecureAuth = s.opts.TLS == nil
	srv.ErrorLog = discardLogger{}
	if s.opts.TLS != nil {
		srv.TLSConfig = s.opts.TLS
		if s.opts.Implicit {
			ln = tls.NewListener(ln, s.opts.TLS)
		}
	}
	s.mu.Lock()
	s.srv, s.ln = srv, ln
	s.mu.Unlock()
	go srv.Serve(ln)
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

// Stop closes the listener and every connection: the relay is down.
func (s *SMTPServer) Stop() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv != nil {
		ln.Close() // Serve may not have taken it up yet, so Close alone could miss it
		srv.Close()
	}
}

// Start listens again on the same address after Stop.
func (s *SMTPServer) Start(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger a moment after Stop
		if ln, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.serve(ln)
}

// Refuse makes the relay answer every recipient with code and message (a
// 4xx defers, a 5xx refuses for good); Refuse(0, "") accepts again.
func (s *SMTPServer) Refuse(code int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		s.refusal = nil
		return
	}
	s.refusal = &smtp.SMTPError{Code: code, Message: msg}
}

// RefuseRecipient makes the relay answer RCPT TO of one address with code,
// enhanced status code (such as "5.1.1"; "" for none) and message, as a
// real relay answers each recipient on its own; code 0 accepts it again.
func (s *SMTPServer) RefuseRecipient(addr string, code int, enhanced, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byRcpt == nil {
		s.byRcpt = map[string]*smtp.SMTPError{}
	}
	if code == 0 {
		delete(s.byRcpt, addr)
		return
	}
	e := &smtp.SMTPError{Code: code, Message: msg, EnhancedCode: smtp.NoEnhancedCode}
	if enhanced != "" {
		var c smtp.EnhancedCode
		if _, err := fmt.Sscanf(enhanced, "%d.%d.%d", &c[0], &c[1], &c[2]); err == nil {
			e.EnhancedCode = c
		}
	}
	s.byRcpt[addr] = e
}

// Mails returns what the relay has accepted so far.
func (s *SMTPServer) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// WaitMails waits until the relay has accepted at least n messages, or
// fails the test after limit.
func (s *SMTPServer) WaitMails(t testing.TB, n int, limit time.Duration) []Mail {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		if m := s.Mails(); len(m) >= n {
			return m
		}
		select {
		case <-s.arrived:
		case <-deadline.C:
			t.Fatalf("the relay got %d messages within %v, want %d", len(s.Mails()), limit, n)
		}
	}
}

type smtpSession struct {
	s    *SMTPServer
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (x *smtpSession) AuthMechanisms() []string {
	if x.s.opts.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (x *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != x.s.opts.User || pass != x.s.opts.Password {
			return errors.New("invalid credentials")
		}
		x.user = user
		return nil
	}), nil
}

func (x *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.opts.User != "" && x.user == "" {
		return &smtp.SMTPError{Code: 530, Message: "Authentication required"}
	}
	x.from = from
	return nil
}

func (x *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	refusal := x.s.refusal
	if r := x.s.byRcpt[to]; r != nil {
		refusal = r
	}
	x.s.mu.Unlock()
	if refusal != nil {
		return refusal
	}
	x.to = append(x.to, to)
	return nil
}

func (x *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	time.Sleep(x.s.opts.Delay)
	x.s.mu.Lock()
	_, tlsOn := x.conn.TLSConnectionState()
	x.s.mails = append(x.s.mails, Mail{From: x.from, To: x.to, Data: b, TLS: tlsOn, User: x.user})
	x.s.mu.Unlock()
	select {
	case x.s.arrived <- struct{}{}:
	default:
	}
	return nil
}

func (x *smtpSession) Reset()        { x.from, x.to = "", nil }
func (x *smtpSession) Logout() error { return nil }

// TestTLS returns a server configuration with a fresh self-signed
// certificate for 127.0.0.1 and localhost, and a client configuration that
// trusts it and only it.
func TestTLS(t testing.TB) (server, client *tls.Config, caPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tokend test relay"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}
	client = &tls.Config{RootCAs: pool}
	return server, client, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
