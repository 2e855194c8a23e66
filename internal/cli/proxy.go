package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/client"
	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/internal/gateway"
	"github.com/tokend/tokend/middleware"
)

// ProxyConfig is everything "tokend proxy" takes from flags and the environment.
type ProxyConfig struct {
	Addr               string
	Upstream           string
	Tokend             string
	Routes             string
	Token              string // TOKEND_TOKEN: the gateway's own service token
	TokenPrefix        string
	ForwardCredentials bool
	AllowUpgrades      bool
	TrustedProxies     api.Prefixes
	AuthFailureLimit   int
	TLSCert, TLSKey    string
	InsecureHTTP       bool
	LogLevel           slog.Level
}

func proxyFlags(cfg *ProxyConfig, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet("proxy", stderr)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8081", "address to listen on")
	fs.StringVar(&cfg.Upstream, "upstream", "", "the API to protect: http://host:port[/base]")
	fs.StringVar(&cfg.Tokend, "tokend", "", "the tokend that issued the tokens: http://host:port")
	fs.StringVar(&cfg.Routes, "routes", "", "file mapping method + path patterns to the permission each requires, or none (default: every request needs a valid token of the account)")
	fs.StringVar(&cfg.TokenPrefix, "token-prefix", apikey.DefaultPrefix, "prefix of the tokend's token values; others are refused without asking it")
	fs.BoolVar(&cfg.ForwardCredentials, "forward-credentials", false, "pass the client's Api-Token and Authorization: Bearer headers to the upstream (default: removed)")
	fs.BoolVar(&cfg.AllowUpgrades, "allow-upgrades", false, "pass protocol upgrades (WebSocket) through; the token is checked when the connection opens, not while it lasts (default: Upgrade removed, the request goes on as plain HTTP)")
	fs.Var(&cfg.TrustedProxies, "trusted-proxies", "comma-separated CIDRs of proxies in front whose X-Forwarded-For names the client (and that terminate TLS)")
	fs.IntVar(&cfg.AuthFailureLimit, "auth-failure-limit", 20, "failed authentications per minute a client address may make before 429")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (with --tls-key: serve HTTPS)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key file")
	fs.BoolVar(&cfg.InsecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address without TLS or a trusted proxy in front")
	fs.TextVar(&cfg.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info (one line per request), warn or error")
	return fs
}

func proxy(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	var cfg ProxyConfig
	fs := proxyFlags(&cfg, stderr)
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	cfg.Token = getenv("TOKEND_TOKEN")
	for name, v := range map[string]string{"--upstream": cfg.Upstream, "--tokend": cfg.Tokend} {
		if v == "" {
			return &UsageError{fmt.Sprintf("proxy: %s is required (run \"tokend help proxy\")", name)}
		}
	}
	if cfg.Token == "" {
		return &UsageError{"proxy: set TOKEND_TOKEN to a token of the account with at least viewer on it: the gateway verifies the account's tokens with it"}
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return &UsageError{"--tls-cert and --tls-key go together"}
	}
	if cfg.AuthFailureLimit < 1 {
		return &UsageError{"--auth-failure-limit must be at least 1"}
	}
	logger, closeLogs := newLogger(stderr, cfg.LogLevel)
	defer closeLogs()
	return Proxy(ctx, cfg, logger)
}

// Proxy runs the gateway until ctx is done, then shuts down gracefully.
func Proxy(ctx context.Context, cfg ProxyConfig, logger *slog.Logger) error {
	how, err := transport(ctx, ServeConfig{Addr: cfg.Addr, TLSCert: cfg.TLSCert, TrustedProxies: cfg.TrustedProxies, InsecureHTTP: cfg.InsecureHTTP})
	if err != nil {
		return err
	}
	upstream, err := url.Parse(cfg.Upstream)
	if err != nil || (upstream.Scheme != "http" && upstream.Scheme != "https") || upstream.Host == "" {
		return &UsageError{fmt.Sprintf("--upstream %q: want http://host:port or https://host", cfg.Upstream)}
	}
	var routes []gateway.Route
	if cfg.Routes != "" {
		f, err := os.Open(cfg.Routes)
		if err != nil {
			return &UsageError{fmt.Sprintf("--routes: %v", err)}
		}
		routes, err = gateway.ParseRoutes(f)
		f.Close()
		if err != nil {
			return &UsageError{fmt.Sprintf("--routes %s: %v", cfg.Routes, err)}
		}
	}
	c, err := client.New(cfg.Tokend, cfg.Token, client.WithUserAgent("tokend-proxy"))
	if err != nil {
		return &UsageError{fmt.Sprintf("--tokend: %v", err)}
	}
	// The gateway's own token must work before anything is served.
	checkCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	self, err := c.Verify(checkCtx, cfg.Token)
	cancel()
	switch {
	case err != nil && client.StatusOf(err) == 0:
		return fmt.Errorf("proxy: cannot reach tokend at %s: %w", cfg.Tokend, err)
	case err != nil:
		return fmt.Errorf("proxy: tokend at %s does not accept TOKEND_TOKEN as a service token: %w", cfg.Tokend, err)
	case !self.Valid:
		return fmt.Errorf("proxy: TOKEND_TOKEN is %s at %s", self.Code, cfg.Tokend)
	}
	auth, err := middleware.New(c, middleware.Options{Prefix: cfg.TokenPrefix, AuthFailureLimit: cfg.AuthFailureLimit,
		ClientAddr: func(r *http.Request) string { a, _ := cfg.TrustedProxies.ClientAddr(r); return a },
		Logger:     logger})
	if err != nil {
		return &UsageError{fmt.Sprintf("--token-prefix: %v", err)}
	}
	handler, err := gateway.New(gateway.Options{Upstream: upstream, Auth: auth, Routes: routes, TokenPrefix: cfg.TokenPrefix,
		ForwardCredentials: cfg.ForwardCredentials, AllowUpgrades: cfg.AllowUpgrades, TrustedProxies: cfg.TrustedProxies, Logger: logger})
	if err != nil {
		return &UsageError{fmt.Sprintf("--routes %s: %v", cfg.Routes, err)}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	rules := "every request needs a valid token of the account"
	if routes != nil {
		rules = fmt.Sprintf("%d routes from %s", len(routes), cfg.Routes)
	}
	logger.Info("listening", "addr", ln.Addr().String(), "url", listenURL(ln, cfg.TLSCert != ""), "upstream", upstream.Redacted(),
		"tokend", cfg.Tokend, "account_id", self.AccountID, "routes", rules, "transport", how)

	g, gctx := errgroup.WithContext(ctx)
	// The authenticator outlives the server's shutdown, so that what the
	// last requests were admitted with is reported to tokend.
	authCtx, stopAuth := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAuth()
	g.Go(func() error { return auth.Run(authCtx) })
	g.Go(func() error {
		var err error
		if cfg.TLSCert != "" {
			err = srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve: %w", err)
	})
	g.Go(func() error {
		<-gctx.Done()
		logger.Info("shutting down")
		shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err := srv.Shutdown(shutCtx)
		stopAuth()
		return err
	})
	err = g.Wait()
	logger.Info("stopped")
	return err
}
