package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/tokend/tokend"
)

// writeError is the one place errors become HTTP responses. Bodies keep the
// contract's shapes: 401 and 404 {"error": "..."}, 403 {"errors": "..."},
// 422 {"errors": {"field": ["..."]}}; beside them, "status" and "code" say
// which rule refused (401, 403 and 429 with a reason). Internal error text is logged, never sent.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		encode(w, http.StatusRequestEntityTooLarge, map[string]any{"error": tooLargeMessage(tooBig)})
		return
	}
	var e *tokend.Error
	if !errors.As(err, &e) {
		s.logFailure(r, err)
		encode(w, http.StatusInternalServerError, map[string]any{"error": "Internal Server Error"})
		return
	}
	switch e.Code {
	case tokend.EUNAUTHORIZED:
		encode(w, http.StatusUnauthorized, map[string]any{"error": e.Message, "status": http.StatusUnauthorized, "code": codeOf(e)})
	case tokend.EFORBIDDEN:
		if e.Reason != "" {
			encode(w, http.StatusForbidden, map[string]any{"errors": e.Message, "status": http.StatusForbidden, "code": e.Reason})
			return
		}
		encode(w, http.StatusForbidden, map[string]any{"errors": e.Message})
	case tokend.ENOTFOUND:
		encode(w, http.StatusNotFound, map[string]any{"error": "Not Found"})
	case tokend.EINVALID:
		encode(w, http.StatusUnprocessableEntity, map[string]any{"errors": e.Fields})
	case tokend.ERATELIMITED:
		encode(w, http.StatusTooManyRequests, map[string]any{"error": e.Message, "status": http.StatusTooManyRequests, "code": codeOf(e)})
	case tokend.ETOOLARGE:
		encode(w, http.StatusRequestEntityTooLarge, map[string]any{"error": e.Message})
	case tokend.EUNAVAILABLE:
		encode(w, http.StatusServiceUnavailable, map[string]any{"error": e.Message})
	default:
		s.logFailure(r, err)
		encode(w, http.StatusInternalServerError, map[string]any{"error": "Internal Server Error"})
	}
}

// codeOf is the "code" of a refusal by authentication or a limit: its
// reason, or the general one of its kind.
func codeOf(e *tokend.Error) string {
	switch {
	case e.Reason != "":
		return e.Reason
	case e.Code == tokend.EUNAUTHORIZED:
		return "invalid_api_key"
	case e.Code == tokend.EFORBIDDEN:
		return "insufficient_permissions"
	case e.Code == tokend.ERATELIMITED:
		return "rate_limited"
	}
	return ""
}

// tooLargeMessage says which bound a request body went over.
func tooLargeMessage(e *http.MaxBytesError) string {
	return fmt.Sprintf("Request body is larger than %d MiB", e.Limit>>20)
}

// logFailure logs an error the client is not told about, with what support
// needs to find the request: its ID, bounded method and path.
func (s *Server) logFailure(r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "request failed", slog.String("request_id", RequestID(r)),
		slog.String("method", MethodLabel(r.Method)), slog.String("route", routeLabel(r)),
		slog.String("path", clip(r.URL.Path, maxLoggedPath)), slog.Any("err", err))
}

var errNotFound = tokend.Errorf(tokend.ENOTFOUND, "Not Found")
