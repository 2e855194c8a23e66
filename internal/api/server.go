// Package api serves tokend over HTTP: the API Tokens contract, the resources
// its permissions name, health and the OpenAPI document.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend"
)

// Server is the HTTP API. Create it with NewServer.
type Server struct {
	svc *tokend.Service
	log *slog.Logger
	mux *http.ServeMux
}

// NewServer returns the API handler over svc, logging to logger.
func NewServer(svc *tokend.Service, logger *slog.Logger) http.Handler {
	s := &Server{svc: svc, log: logger, mux: http.NewServeMux()}
	s.routes()
	return s
}

// ServeHTTP logs each request and turns a panic into a 500.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	ctx := context.WithValue(r.Context(), callerKey{}, &callerSlot{})
	r = r.WithContext(ctx)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(ctx, "panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v)
			if rec.status == 0 {
				encode(rec, http.StatusInternalServerError, map[string]any{"error": "Internal Server Error"})
			}
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method),
			slog.String("route", r.Pattern),
			slog.Int("status", rec.code()),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr),
		}
		if t := ctx.Value(callerKey{}).(*callerSlot).token; t != nil {
			attrs = append(attrs, slog.Int64("token_id", t.ID))
		}
		s.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
	}()
	s.mux.ServeHTTP(rec, r)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// noRoute answers requests no route matches: 405 with Allow when the path
// exists under other methods, 404 otherwise.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 && r.Method != http.MethodHead {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		encode(w, http.StatusMethodNotAllowed, map[string]any{"error": "Method Not Allowed"})
		return
	}
	encode(w, http.StatusNotFound, map[string]any{"error": "Not Found"})
}

// pathID parses a positive integer path parameter; anything else is ENOTFOUND,
// because no such record can exist.
func pathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, errNotFound
	}
	return id, nil
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	encode(w, http.StatusOK, map[string]string{"status": "ok"})
}
