package app

import (
	"context"
	"crypto/tls"
	"net"
	"os"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/smtpd"
)

// newSMTP wires the SMTP listeners the Config asks for: the submission
// server (--smtp-addr, --smtps-addr) and the MX for bounces (--mx-addr).
// They present --tls-cert; without it (on loopback only, which Validate
// checked) a self-signed certificate made now, logged by fingerprint.
func (a *App) newSMTP() error {
	cfg := a.Config
	if cfg.SMTPAddr == "" && cfg.SMTPSAddr == "" && cfg.MXAddr == "" {
		return nil
	}
	hostname := cfg.SMTPHostname
	if hostname == "" {
		if h, err := os.Hostname(); err == nil && h != "" {
			hostname = h
		} else {
			hostname = "localhost"
		}
	}
	var tlsConfig *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return &ConfigError{"--tls-cert/--tls-key: " + err.Error()}
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else if cfg.SMTPAddr != "" || cfg.SMTPSAddr != "" {
		hosts := []string{"localhost", "127.0.0.1", "::1", hostname}
		for _, addr := range []string{cfg.SMTPAddr, cfg.SMTPSAddr} {
			if h, _, err := net.SplitHostPort(addr); err == nil && h != "" {
				hosts = append(hosts, h)
			}
		}
		c, fingerprint, err := smtpd.SelfSigned(hosts, a.now())
		if err != nil {
			return err
		}
		tlsConfig = c
		a.Logger.Warn("SMTP submission presents a self-signed certificate made at start (loopback only; give --tls-cert and --tls-key for clients elsewhere)",
			"sha256_fingerprint", fingerprint)
	}
	observe := func(server string) func(what, result string) {
		return func(what, result string) { a.Metrics.SMTP.WithLabelValues(server, what, result).Inc() }
	}
	if cfg.SMTPAddr != "" || cfg.SMTPSAddr != "" {
		a.Submission = smtpd.NewServer(smtpd.Options{
			Verifier: a.Verifier, Service: a.Service, Mailer: a.Mailer, TLS: tlsConfig, Hostname: hostname, Logger: a.Logger,
			MaxConnsPerIP: cfg.SMTPMaxConnsPerIP, Idle: cfg.SMTPIdle,
			Observe: func(what, result string) {
				if what == "auth" {
					a.Metrics.AuthOutcomes.WithLabelValues(result).Inc()
				}
				observe("submission")(what, result)
			},
		})
	}
	if cfg.MXAddr != "" {
		a.MX = smtpd.NewMX(smtpd.MXOptions{Bounces: tokend.NewBounces(a.Service, cfg.BounceDomain), TLS: tlsConfig, Hostname: hostname,
			Logger: a.Logger, MaxConnsPerIP: cfg.SMTPMaxConnsPerIP, Idle: cfg.SMTPIdle, Observe: observe("mx")})
	}
	return nil
}

// Listeners are what an App serves on: HTTP, and the optional others (nil
// when not configured).
type Listeners struct {
	HTTP    net.Listener
	Metrics net.Listener
	SMTP    net.Listener // submission with STARTTLS
	SMTPS   net.Listener // submission with TLS from the first byte
	MX      net.Listener // bounces
}

// Listen opens the listeners cfg names besides HTTP and metrics, closing
// what it opened when one fails.
func (a *App) ListenSMTP(ls *Listeners) error {
	cfg := a.Config
	for _, l := range []struct {
		addr string
		ln   *net.Listener
		what string
	}{{cfg.SMTPAddr, &ls.SMTP, "smtp"}, {cfg.SMTPSAddr, &ls.SMTPS, "smtps"}, {cfg.MXAddr, &ls.MX, "mx"}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			ls.closeSMTP()
			return &listenError{what: l.what, err: err}
		}
		*l.ln = ln
	}
	return nil
}

func (ls *Listeners) closeSMTP() {
	for _, ln := range []*net.Listener{&ls.SMTP, &ls.SMTPS, &ls.MX} {
		if *ln != nil {
			(*ln).Close()
			*ln = nil
		}
	}
}

type listenError struct {
	what string
	err  error
}

func (e *listenError) Error() string { return "listen for " + e.what + ": " + e.err.Error() }
func (e *listenError) Unwrap() error { return e.err }

// serveSMTP runs the SMTP servers on their listeners under g's lifecycle.
func (a *App) serveSMTP(goFn func(func() error), ls Listeners) {
	if a.Submission != nil {
		if ls.SMTP != nil {
			goFn(func() error { return a.Submission.Serve(ls.SMTP) })
		}
		if ls.SMTPS != nil {
			goFn(func() error { return a.Submission.ServeTLS(ls.SMTPS) })
		}
	}
	if a.MX != nil && ls.MX != nil {
		goFn(func() error { return a.MX.Serve(ls.MX) })
	}
}

// shutdownSMTP stops the SMTP servers: no new sessions, idle ones ended,
// messages being sent answered.
func (a *App) shutdownSMTP(ctx context.Context) error {
	var err error
	if a.Submission != nil {
		err = a.Submission.Shutdown(ctx)
	}
	if a.MX != nil {
		if e := a.MX.Shutdown(ctx); err == nil {
			err = e
		}
	}
	return err
}
