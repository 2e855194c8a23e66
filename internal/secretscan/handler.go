package secretscan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
)

// The headers of GitHub's signature.
const (
	HeaderKeyID     = "Github-Public-Key-Identifier"
	HeaderSignature = "Github-Public-Key-Signature"
)

// DefaultMaxBody is the default bound of a report's body.
const DefaultMaxBody = 1 << 20

// RetryAfter is the Retry-After, in seconds, of a 503 answer.
const RetryAfter = 60

// maxLogged bounds a request-given string (a key identifier, a token
// type) as logged.
const maxLogged = 100

// Reporter is the domain's side: it is told of each match and says whether
// the token was one of its own.
//
// Report is called for the matches of a report in order, one at a time,
// only once the report's signature has verified. It returns TruePositive
// for one of the domain's tokens (having revoked it, notified its owner,
// whatever the policy is) and FalsePositive otherwise. It gets the
// request's context.
//
// An error fails the whole report: Report is not called for the matches
// after it, GitHub is answered 503 with Retry-After, and GitHub sends the
// whole report again later. So Report must be idempotent: the matches
// before the failing one are reported again. Errors are logged, so they
// must not hold token values. A label other than TruePositive and
// FalsePositive is a bug of the Reporter: it too fails the report (500).
type Reporter interface {
	Report(ctx context.Context, m Match) (Label, error)
}

// HandlerOptions tunes Handler. The zero value is ready to use.
type HandlerOptions struct {
	// MaxBody bounds the body of a report, in bytes; a larger one is
	// refused with 413. Default (0 or less): DefaultMaxBody.
	MaxBody int64

	// Logger, if set, logs refused reports at info (with the key
	// identifier and the reason), reporter failures at error, and each
	// answered report at info (with the number of matches and of true
	// positives). It never gets token values or the body.
	Logger *slog.Logger
}

// Handler serves GitHub's secret scanning reports. Keys and r must not be
// nil.
//
// A request is answered, in this order of checks:
//   - 405 with Allow: POST, for a method other than POST;
//   - 401, if the signature headers are missing;
//   - 413, for a body larger than MaxBody (400 if it cannot be read);
//   - 401, for an unknown key identifier or a signature that does not
//     verify over the body exactly as received;
//   - 422, for a body that is not a valid report (see ParseMatches);
//   - 503 with Retry-After, if the Reporter fails, or 500 if it returns an
//     invalid label (see Reporter);
//   - 200 with the feedback array, one element per match, in order
//     ([] for an empty report), otherwise.
//
// The Reporter is called only for a report whose signature verified. Every
// answer is JSON; errors are {"error": "..."}. Answers are not cacheable:
// the feedback holds the tokens.
func Handler(keys *Keys, r Reporter, opts HandlerOptions) http.Handler {
	if keys == nil || r == nil {
		panic("secretscan: Handler needs keys and a reporter")
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &handler{keys: keys, reporter: r, maxBody: opts.MaxBody, log: opts.Logger}
}

type handler struct {
	keys     *Keys
	reporter Reporter
	maxBody  int64
	log      *slog.Logger
}

func (h *handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuse(w, req, http.StatusMethodNotAllowed, req.Header.Get(HeaderKeyID), "method not allowed, use POST")
		return
	}
	keyID, sig := req.Header.Get(HeaderKeyID), req.Header.Get(HeaderSignature)
	if keyID == "" || sig == "" {
		missing := HeaderKeyID
		if keyID != "" {
			missing = HeaderSignature
		}
		h.refuse(w, req, http.StatusUnauthorized, keyID, "missing "+missing+" header")
		return
	}
	if req.ContentLength > h.maxBody {
		h.refuse(w, req, http.StatusRequestEntityTooLarge, keyID, "body larger than "+strconv.FormatInt(h.maxBody, 10)+" bytes")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, h.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.refuse(w, req, http.StatusRequestEntityTooLarge, keyID, "body larger than "+strconv.FormatInt(h.maxBody, 10)+" bytes")
			return
		}
		h.refuse(w, req, http.StatusBadRequest, keyID, "could not read the body")
		return
	}
	if err := h.keys.Verify(keyID, sig, body); err != nil {
		reason := "signature does not verify"
		if errors.Is(err, ErrUnknownKey) {
			reason = "unknown key identifier"
		}
		h.refuse(w, req, http.StatusUnauthorized, keyID, reason)
		return
	}
	matches, err := ParseMatches(body)
	if err != nil {
		h.refuse(w, req, http.StatusUnprocessableEntity, keyID, err.Error())
		return
	}

	ctx := req.Context()
	feedback := make([]Feedback, len(matches))
	positives := 0
	for i, m := range matches {
		label, err := h.reporter.Report(ctx, m)
		if err == nil && !label.Valid() {
			h.log.ErrorContext(ctx, "secret scanning: the reporter returned an invalid label",
				"key_id", loggable(keyID), "match", i, "of", len(matches), "type", loggable(m.Type))
			writeError(w, http.StatusInternalServerError, "internal error")
			return
		}
		if err != nil {
			h.log.ErrorContext(ctx, "secret scanning: reporting a match failed, GitHub will retry",
				"key_id", loggable(keyID), "match", i, "of", len(matches), "type", loggable(m.Type), "error", err)
			w.Header().Set("Retry-After", strconv.Itoa(RetryAfter))
			writeError(w, http.StatusServiceUnavailable, "could not process the report, retry later")
			return
		}
		if label == TruePositive {
			positives++
		}
		feedback[i] = Feedback{TokenRaw: m.Token, TokenType: m.Type, Label: label}
	}
	h.log.InfoContext(ctx, "secret scanning: report answered",
		"key_id", loggable(keyID), "matches", len(matches), "true_positives", positives)
	writeJSON(w, http.StatusOK, feedback)
}

// refuse answers a request that is not processed, and logs why.
func (h *handler) refuse(w http.ResponseWriter, req *http.Request, status int, keyID, reason string) {
	h.log.InfoContext(req.Context(), "secret scanning: report refused",
		"status", status, "key_id", loggable(keyID), "reason", reason)
	writeError(w, status, reason)
}

// loggable truncates a request-given string for the log.
func loggable(s string) string {
	if len(s) > maxLogged {
		return s[:maxLogged] + "..."
	}
	return s
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // tokens go back as they came
	if err := enc.Encode(v); err != nil {
		// Strings and fixed structs only: cannot happen.
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString(`{"error":"internal error"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
