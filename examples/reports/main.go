// Command reports is an example service that accepts tokend's tokens with
// the middleware package: a small reports API whose routes need a valid
// token of the account, or a permission on the project in the path.
//
//	TOKEND_URL=http://127.0.0.1:8080 TOKEND_TOKEN=tk_live_... go run ./examples/reports
//
// TOKEND_TOKEN is the service's own token: a token of the account with at
// least viewer on it, used to verify the tokens its clients present.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tokend/tokend/client"
	"github.com/tokend/tokend/middleware"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "reports:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "address to listen on")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	tokendURL, token := getenv("TOKEND_URL"), getenv("TOKEND_TOKEN")
	if tokendURL == "" || token == "" {
		return errors.New("set TOKEND_URL and TOKEND_TOKEN (a token of the account with at least viewer on it)")
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	c, err := client.New(tokendURL, token)
	if err != nil {
		return err
	}
	auth, err := middleware.New(c, middleware.Options{Logger: logger})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: routes(auth), ReadHeaderTimeout: 10 * time.Second}
	logger.Info("listening", "url", "http://"+ln.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	// The authenticator follows tokend's change stream and reports usage; it
	// stops after the server, so that its last report has every request.
	authCtx, stopAuth := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAuth()
	g.Go(func() error { return auth.Run(authCtx) })
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := srv.Shutdown(shut)
		stopAuth()
		return err
	})
	return g.Wait()
}

// routes is the service's API: every route on one screen, with what it needs.
func routes(auth *middleware.Authenticator) http.Handler {
	mux := http.NewServeMux()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.Handle("GET /healthz", ok)
	mux.Handle("GET /ping", auth.Require()(ok)) // "ok" for any valid token: /healthz behind the middleware
	mux.Handle("GET /me", auth.Require()(http.HandlerFunc(me)))
	mux.Handle("GET /projects/{project_id}/reports", auth.RequireFunc(projectLevel(client.Viewer))(http.HandlerFunc(reports)))
	mux.Handle("POST /projects/{project_id}/reports", auth.RequireFunc(projectLevel(client.Admin))(http.HandlerFunc(reports)))
	return mux
}

// projectLevel requires level on the project named in the path.
func projectLevel(level int) func(r *http.Request) ([]client.Permission, error) {
	return func(r *http.Request) ([]client.Permission, error) {
		p, err := client.ParsePermission(fmt.Sprintf("project:%s:%d", r.PathValue("project_id"), level))
		if err != nil {
			return nil, err
		}
		return []client.Permission{p}, nil
	}
}

func me(w http.ResponseWriter, r *http.Request) {
	id, _ := middleware.FromContext(r.Context())
	writeJSON(w, map[string]any{"token_id": id.TokenID, "name": id.Name, "account_id": id.AccountID, "environment": id.Environment})
}

func reports(w http.ResponseWriter, r *http.Request) {
	id, _ := middleware.FromContext(r.Context())
	writeJSON(w, map[string]any{"project_id": r.PathValue("project_id"), "reports": []string{}, "requested_by": id.Name})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
