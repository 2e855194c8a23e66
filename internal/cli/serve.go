package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/internal/apikey"
	"github.com/tokend/tokend/internal/sqlite"
)

// ServeConfig is everything "tokend serve" takes from flags and the environment.
type ServeConfig struct {
	Addr        string
	DB          string
	ResetGrace  time.Duration
	PurgeAfter  time.Duration
	DefaultTTL  time.Duration
	TokenPrefix string
	TLSCert     string
	TLSKey      string
	LogLevel    slog.Level
}

func serve(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	var cfg ServeConfig
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&cfg.DB, "db", "./tokend.db", "SQLite database file (created if missing)")
	fs.DurationVar(&cfg.ResetGrace, "reset-grace", 12*time.Hour, "how long a reset token keeps working")
	fs.DurationVar(&cfg.PurgeAfter, "purge-after", 24*time.Hour, "expired tokens are deleted at most this long after expiry")
	fs.DurationVar(&cfg.DefaultTTL, "default-ttl", 0, "lifetime of tokens created without expires_at (0: never expire)")
	fs.StringVar(&cfg.TokenPrefix, "token-prefix", apikey.DefaultPrefix, "prefix of token values, as in tk_live_...")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (with --tls-key: serve HTTPS)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key file")
	fs.TextVar(&cfg.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	if err := parse(fs, args, getenv); err != nil {
		return err
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return &UsageError{"--tls-cert and --tls-key go together"}
	}
	for name, d := range map[string]time.Duration{"reset-grace": cfg.ResetGrace, "purge-after": cfg.PurgeAfter, "default-ttl": cfg.DefaultTTL} {
		if err := nonNegative(name, d); err != nil {
			return err
		}
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	return Serve(ctx, cfg, getenv("USER"), stdout, logger)
}

// Serve runs the API until ctx is done, then shuts down gracefully. On an empty
// database it first creates the account "Default" and prints its admin token
// to stdout, once.
func Serve(ctx context.Context, cfg ServeConfig, operator string, stdout io.Writer, logger *slog.Logger) error {
	format, err := apikey.NewFormat(cfg.TokenPrefix)
	if err != nil {
		return &UsageError{err.Error()}
	}
	store, err := sqlite.Open(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer store.Close()
	svc := tokend.NewService(store, tokend.Options{
		ResetGrace: cfg.ResetGrace, PurgeAfter: cfg.PurgeAfter, DefaultTTL: cfg.DefaultTTL, Format: format,
	})

	acct, first, err := svc.Bootstrap(ctx, operatorName(operator))
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if first != nil {
		fmt.Fprintf(stdout, "Created account %q (id %d) and its first admin token:\n\n    %s\n\n"+
			"Store it now: tokend keeps only a hash of it and will not show it again.\n", acct.Name, acct.ID, first.Value)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           api.NewServer(svc, logger),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	logger.Info("listening", "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String(), "db", cfg.DB)

	var wg sync.WaitGroup
	purgeCtx, stopPurge := context.WithCancel(ctx)
	defer stopPurge()
	wg.Add(1)
	go func() {
		defer wg.Done()
		runPurger(purgeCtx, svc, logger)
	}()

	serveErr := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			serveErr <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			serveErr <- srv.Serve(ln)
		}
	}()

	select {
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		logger.Info("shutting down")
		shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if serr := srv.Shutdown(shutCtx); serr != nil {
			err = fmt.Errorf("shutdown: %w", serr)
		}
	}
	stopPurge()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	logger.Info("stopped")
	return err
}

// runPurger deletes expired tokens now and then every PurgeInterval until ctx is done.
func runPurger(ctx context.Context, svc *tokend.Service, logger *slog.Logger) {
	t := time.NewTicker(svc.PurgeInterval())
	defer t.Stop()
	for {
		if n, err := svc.PurgeExpired(ctx); err != nil && ctx.Err() == nil {
			logger.Error("purging expired tokens", "err", err)
		} else if n > 0 {
			logger.Info("purged expired tokens", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func operatorName(user string) string {
	if user == "" {
		return "tokend"
	}
	return user
}
