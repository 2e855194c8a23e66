package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tokend/tokend"
)

// The authentication cache's timing.
const (
	// authSyncInterval is how often the authentication cache applies
	// changes made by other processes: a revocation reaches every process
	// within about this long.
	authSyncInterval = 250 * time.Millisecond
	// authSyncIntervalShared is the same on a database several instances
	// share, where a revocation must reach every instance within 100 ms.
	authSyncIntervalShared = 40 * time.Millisecond
	// authBackstop is how often an instance on a shared database forgets its
	// whole authentication cache, whatever the change feed says.
	authBackstop = 10 * time.Minute
	// authStaleAfter is how long the change log may be unreadable before the
	// cache stops being trusted.
	authStaleAfter = 2 * time.Second
)

// expiryCheckInterval is how often expiry warnings are looked for.
const expiryCheckInterval = time.Hour

// shutdownGrace bounds each step of stopping: requests finishing, the last
// usage written, the queued alerts recorded.
const shutdownGrace = 15 * time.Second

// Serve answers HTTP on ls.HTTP (and /metrics on ls.Metrics, SMTP
// submission on ls.SMTP and ls.SMTPS, bounces on ls.MX when they are not
// nil) and does the background work, until ctx ends or serving fails. Then
// it stops in order: no new requests or sessions, the running ones finish
// (change streams end at once, idle SMTP sessions too), the background
// stops, the usage still counted is written.
func (a *App) Serve(ctx context.Context, ls Listeners) error {
	ln, metricsLn := ls.HTTP, ls.Metrics
	errLog := slog.NewLogLogger(a.Logger.Handler(), slog.LevelWarn)
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errLog,
	}
	srv.RegisterOnShutdown(a.EndStreams)
	var metricsSrv *http.Server
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.Metrics.Handler())
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	}
	// The background outlives the requests: they may still queue work.
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if a.Config.TLSCert != "" {
			err = srv.ServeTLS(ln, a.Config.TLSCert, a.Config.TLSKey)
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve: %w", err)
	})
	if metricsSrv != nil {
		g.Go(func() error {
			if err := metricsSrv.Serve(metricsLn); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve metrics: %w", err)
			}
			return nil
		})
	}
	a.serveSMTP(g.Go, ls)
	g.Go(func() error { return a.Run(bgCtx) })
	g.Go(func() error {
		<-gctx.Done()
		a.Logger.Info("shutting down")
		shutCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		err := errors.Join(srv.Shutdown(shutCtx), a.shutdownSMTP(shutCtx))
		ls.closeSMTP() // a server that had not started serving yet
		if metricsSrv != nil {
			err = errors.Join(err, metricsSrv.Shutdown(shutCtx))
		}
		stopBackground()
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	})
	err := g.Wait()
	a.Logger.Info("stopped")
	return err
}

// EndStreams ends the long-lived responses (change streams) now and from
// now on, so that an HTTP server serving Handler can close without waiting
// for them. Serve and Run call it as they stop.
func (a *App) EndStreams() { a.stopOnce.Do(func() { close(a.done) }) }

// Run does the application's background work until ctx ends: the outbox's
// runners, the alert monitor, the authentication change feed, DNS checks of
// sending domains, purges, usage flushes and limiter sweeps, all started
// and stopped together. When ctx ends it waits for every one of them, then
// writes the usage still counted and ends the change streams.
func (a *App) Run(ctx context.Context) error {
	defer a.EndStreams()
	g, ctx := errgroup.WithContext(ctx)
	every := func(interval time.Duration, job func(ctx context.Context)) {
		g.Go(func() error {
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
					job(ctx)
				}
			}
		})
	}
	for _, r := range a.runners {
		g.Go(func() error { return r.Run(ctx) })
	}
	g.Go(func() error { return a.Monitor.Run(ctx) })

	cfg, logger, svc, m := a.Config, a.Logger, a.Service, a.Metrics
	every(time.Minute, func(context.Context) {
		a.limits.Sweep(a.now())
	})
	// DNS checks: new domains often, then hourly; verified ones every
	// --dns-recheck. Each process claims the domains it checks.
	checkDomains := func(ctx context.Context) {
		if n, err := a.Domains.CheckDue(ctx); err != nil && ctx.Err() == nil {
			logger.Error("checking sending domains' DNS", "err", err)
		} else if n > 0 {
			logger.Debug("checked sending domains' DNS", "domains", n)
		}
	}
	g.Go(func() error { checkDomains(ctx); return nil }) // the first round at once
	every(min(15*time.Second, cfg.DNSRecheck), checkDomains)
	if IsPostgres(cfg.DB) {
		// The backstop of the change feed: whatever it could ever have missed
		// is looked up afresh at least this often.
		every(authBackstop, func(context.Context) { svc.FlushAuthCache() })
	}
	every(10*time.Second, func(ctx context.Context) {
		if n, err := svc.Outbox().Pending(ctx, tokend.EmailJob); err == nil {
			m.EmailsQueued.Set(float64(n))
		}
	})
	// Expiry warnings: at start, then hourly; each is raised once whatever
	// the restarts and instances.
	checkExpiring := func(ctx context.Context) {
		if n, err := a.Events.CheckExpiring(ctx); err != nil && ctx.Err() == nil {
			logger.Error("raising expiry warnings", "err", err)
		} else if n > 0 {
			logger.Info("raised expiry warnings", "tokens", n)
		}
	}
	g.Go(func() error { checkExpiring(ctx); return nil })
	every(expiryCheckInterval, checkExpiring)
	g.Go(func() error { a.purge(ctx); return nil }) // what expired while tokend was down goes at once
	every(svc.PurgeInterval(), a.purge)
	every(cfg.UsageFlush, func(ctx context.Context) {
		if err := svc.FlushUsage(ctx); err != nil {
			m.UsageFlushes.WithLabelValues("error").Inc()
			if ctx.Err() == nil {
				logger.Error("flushing usage", "err", err)
			}
			return
		}
		m.UsageFlushes.WithLabelValues("ok").Inc()
	})
	a.syncAuthCache(every)

	err := g.Wait()
	// No request of this application runs any more: write what the last
	// ones counted.
	flushCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if ferr := svc.FlushUsage(flushCtx); ferr != nil {
		logger.Error("flushing usage at shutdown", "err", ferr)
		err = errors.Join(err, ferr)
	}
	return err
}

// syncAuthCache applies, through every, the changes other processes made:
// a revocation made elsewhere reaches this process within about the sync
// interval. If the change log cannot be read for authStaleAfter, the cache
// may hold what was revoked meanwhile: it is flushed, and lookups go to the
// database until the feed works again.
func (a *App) syncAuthCache(every func(time.Duration, func(context.Context))) {
	syncEvery := authSyncInterval
	if IsPostgres(a.Config.DB) {
		syncEvery = authSyncIntervalShared
	}
	lastSync, flushed := time.Now(), false
	every(syncEvery, func(ctx context.Context) {
		err := a.Service.SyncAuthCache(ctx)
		switch {
		case err == nil:
			if flushed {
				a.Logger.Info("the authentication change log is readable again")
			}
			lastSync, flushed = time.Now(), false
		case ctx.Err() != nil:
		case time.Since(lastSync) > authStaleAfter && !flushed:
			a.Service.FlushAuthCache()
			flushed = true
			a.Logger.Error("cannot read the authentication change log; flushed the authentication cache", "err", err)
		default:
			a.Logger.Error("syncing the authentication cache", "err", err)
		}
	})
}

// purge deletes expired tokens that are due, and captured mail past the
// capture retention.
func (a *App) purge(ctx context.Context) {
	if n, err := a.Service.PurgeExpired(ctx); err != nil && ctx.Err() == nil {
		a.Logger.Error("purging expired tokens", "err", err)
	} else if n > 0 {
		a.Logger.Info("purged expired tokens", "count", n)
	}
	if n, err := a.Logs.Prune(ctx); err != nil && ctx.Err() == nil {
		a.Logger.Error("deleting email logs past their retention", "err", err)
	} else if n > 0 {
		a.Logger.Info("deleted email logs past their retention", "emails", n, "retention", a.Logs.Retention())
	}
	if n, err := a.Mailer.PruneCaptured(ctx); err != nil && ctx.Err() == nil {
		a.Logger.Error("deleting captured mail past its retention", "err", err)
	} else if n > 0 {
		a.Logger.Info("deleted captured mail past its retention", "emails", n, "retention", a.Mailer.CaptureRetention())
	}
}
