package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/tokend/tokend"
)

// verifyInput is the body of POST /api/verify.
type verifyInput struct {
	Token       *string               `json:"token"`
	Permissions []requiredPermissions `json:"permissions"`
	// IP is the address the token's holder called from, checked against
	// the token's allowed_ips.
	IP *string `json:"ip"`
}

// requiredPermissions is one permission a verification asks about; the
// domain validates it, so that every bad entry is reported under "permissions".
type requiredPermissions struct {
	ResourceType string             `json:"resource_type"`
	ResourceID   requiredID         `json:"resource_id"`
	AccessLevel  tokend.AccessLevel `json:"access_level"`
}

// requiredID is a resource_id: an integer or a string of digits, as in
// token bodies, with errors reported under "permissions".
type requiredID int64

func (id *requiredID) UnmarshalJSON(b []byte) error {
	var n idInput
	if err := n.UnmarshalJSON(b); err != nil {
		return tokend.Invalid("permissions", "resource_id must be a positive integer or a string of digits")
	}
	*id = requiredID(n)
	return nil
}

// verification is the body of a POST /api/verify answer. The token's
// fields are there only when it belongs to the caller's account.
type verification struct {
	Valid  bool              `json:"valid"`
	Code   tokend.VerifyCode `json:"code"`
	Reason string            `json:"reason,omitempty"`
	*verifiedToken
}

type verifiedToken struct {
	TokenID     int64                `json:"token_id"`
	Name        string               `json:"name"`
	AccountID   int64                `json:"account_id"`
	Environment tokend.Environment   `json:"environment"`
	ExpiresAt   *time.Time           `json:"expires_at"`
	Permissions []resourcePermission `json:"permissions"`
	RateLimit   *rateLimitState      `json:"ratelimit,omitempty"`
	guardsJSON
}

type rateLimitState struct {
	Limit     int `json:"limit"`
	Remaining int `json:"remaining"`
	Reset     int `json:"reset"` // seconds until the limit is whole again
}

// verifyToken answers POST /api/verify: 200 with the outcome for any token
// asked about; errors only for the caller's own request.
func (s *Server) verifyToken(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	var in verifyInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if in.Token == nil || *in.Token == "" {
		return tokend.Invalid("token", "can't be blank")
	}
	required := make([]tokend.Permission, len(in.Permissions))
	for i, p := range in.Permissions {
		typ, ok := tokend.ParseResourceType(p.ResourceType)
		if !ok {
			typ = tokend.ResourceType(p.ResourceType) // the domain says what is wrong with it
		}
		required[i] = tokend.Permission{ResourceType: typ, ResourceID: int64(p.ResourceID), Level: p.AccessLevel}
	}
	var ip string
	if in.IP != nil {
		addr, err := netip.ParseAddr(*in.IP)
		if err != nil || addr.Zone() != "" {
			return tokend.Invalid("ip", "must be an IPv4 or IPv6 address, such as 203.0.113.7 or 2001:db8::1")
		}
		ip = addr.String()
	}
	v, err := s.verifier.VerifyToken(r.Context(), caller, *in.Token, ip, required)
	h := w.Header()
	if v.Spent.Limit > 0 {
		setRateHeaders(h, v.Spent)
	}
	if err != nil {
		if tokend.ErrorCode(err) == tokend.ERATELIMITED {
			h.Set("Retry-After", seconds(v.Spent.RetryAfter))
		}
		return err
	}
	out := verification{Valid: v.Code == tokend.CodeValid, Code: v.Code, Reason: v.Reason}
	if t := v.Token; t != nil {
		vt := &verifiedToken{TokenID: t.ID, Name: t.Name, AccountID: t.AccountID, Environment: t.Environment,
			ExpiresAt: t.ExpiresAt, Permissions: make([]resourcePermission, len(t.Permissions)), guardsJSON: toGuardsJSON(t, s.opts.Now())}
		switch {
		case v.Quota != nil:
			vt.Quota = quotaStateJSON(v.Quota)
		case vt.Quota != nil:
			// Not spent by this verification: what is left is not known here.
			vt.Quota.Remaining, vt.Quota.ResetsAt = nil, nil
		}
		for i, p := range t.Permissions {
			vt.Permissions[i] = resourcePermission{ResourceType: p.ResourceType, ResourceID: p.ResourceID, AccessLevel: p.Level}
		}
		if v.LimitSet {
			vt.RateLimit = &rateLimitState{Limit: v.Limit.Limit, Remaining: v.Limit.Remaining, Reset: ceilSeconds(v.Limit.Reset)}
		}
		out.verifiedToken = vt
	}
	encode(w, http.StatusOK, out)
	return nil
}

// Identity headers of a verified request, for a reverse proxy to pass upstream.
const (
	HeaderAccountID   = "X-Tokend-Account-Id"
	HeaderTokenID     = "X-Tokend-Token-Id"
	HeaderEnvironment = "X-Tokend-Environment"
)

// Headers of a refusal of GET /api/verify, for a reverse proxy that cannot
// pass the body on (nginx's auth_request): the refusal's code, as the
// middleware and the gateway name it, and its message, escaped to go
// between the quotes of a JSON string as it is.
const (
	HeaderErrorCode = "X-Tokend-Error-Code"
	HeaderError     = "X-Tokend-Error"
)

// refusalOf is the code and JSON-escaped message of a refusal of GET
// /api/verify.
func refusalOf(err error) (code, msg string) {
	var e *tokend.Error
	if !errors.As(err, &e) {
		return "internal_error", "Internal Server Error"
	}
	code, msg = codeOf(e), e.Message
	switch e.Code {
	case tokend.EUNAUTHORIZED, tokend.EFORBIDDEN, tokend.ERATELIMITED:
	case tokend.EINVALID:
		code, msg = "invalid_request", "The verification's query is not valid: "+tokend.FieldErrors(e.Fields).String()
	case tokend.EUNAVAILABLE:
		code = "unavailable"
	default:
		code, msg = "internal_error", "Internal Server Error"
	}
	b, _ := json.Marshal(msg)
	return code, string(b[1 : len(b)-1])
}

var (
	liveValue = []string{string(tokend.Live)}[:1:1]
	testValue = []string{string(tokend.Test)}[:1:1]
)

// verifyForward answers GET /api/verify for reverse proxies (nginx
// auth_request, Traefik ForwardAuth, Envoy ext_authz): the forwarded
// request's own credential is verified and charged like any request; the
// query may narrow what passes with account_id=N and
// require=<type>:<id>:<level> (repeated; every one must be held, else 403).
// With account_id, a token of another account is answered exactly as a
// token that does not exist (see tokend.Verifier.VerifyIn). A pass is 204
// with the identity headers. The credential is checked before the query, so
// that a request without a valid one learns nothing from it.
func (s *Server) verifyForward(w http.ResponseWriter, r *http.Request) {
	q, qerr := parseForwardQuery(r.URL.RawQuery)
	cred, client := requestCredential(r), tokend.ClientAddr(r.Context())
	var d tokend.Decision
	if qerr == nil && q.account != 0 {
		d = s.verifier.VerifyIn(r.Context(), cred, client, q.account)
	} else {
		d = s.verifier.Verify(r.Context(), cred, client)
	}
	caller, err := s.decided(w, r, d)
	if err == nil {
		err = qerr
	}
	if err == nil && len(q.required) > 0 {
		err = s.checkRequired(r, caller, q.required)
	}
	if err != nil {
		code, msg := refusalOf(err)
		h := w.Header()
		h[HeaderErrorCode] = []string{code}
		h[HeaderError] = []string{msg}
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	// Nothing to sniff in an empty answer; and without it the header map
	// stays within one group, saving its growth on every request.
	delete(h, headerNoSniff)
	ids := []string{strconv.FormatInt(caller.AccountID, 10), strconv.FormatInt(caller.ID, 10)} // one allocation for two headers
	h[HeaderAccountID], h[HeaderTokenID] = ids[0:1:1], ids[1:2:2]
	if caller.Environment == tokend.Test {
		h[HeaderEnvironment] = testValue
	} else {
		h[HeaderEnvironment] = liveValue
	}
	if st, ok := r.Context().Value(stateKey{}).(*requestState); ok {
		st.verifyPass = true
	}
	w.WriteHeader(http.StatusNoContent)
}

// forwardQuery is what GET /api/verify's query asks: the account whose
// tokens pass (0: any) and the permissions they must hold.
type forwardQuery struct {
	account  int64
	required []tokend.Permission
}

// parseForwardQuery reads GET /api/verify's query. Anything it does not
// know, and any empty value, is EINVALID: a typo in a proxy's configuration
// must not drop a check silently.
func parseForwardQuery(raw string) (forwardQuery, error) {
	var out forwardQuery
	if raw == "" {
		return out, nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return out, tokend.Invalid("base", "the query string cannot be read")
	}
	for k, vs := range q {
		if k != "account_id" && k != "require" {
			return out, tokend.Invalid(clip(k, 64), "is not a parameter of GET /api/verify (account_id and require are)")
		}
		for _, v := range vs {
			if v == "" {
				return out, tokend.Invalid(k, "must not be empty")
			}
		}
	}
	if vs := q["account_id"]; len(vs) > 0 {
		if len(vs) > 1 {
			return out, tokend.Invalid("account_id", "must be given once")
		}
		id, ok := parseID(vs[0])
		if !ok {
			return out, tokend.Invalid("account_id", "must be a positive integer")
		}
		out.account = id
	}
	reqs := q["require"]
	if len(reqs) > tokend.MaxRequiredPermissions {
		return out, tokend.Invalid("require", fmt.Sprintf("at most %d permissions may be checked at once", tokend.MaxRequiredPermissions))
	}
	for _, v := range reqs {
		p, err := tokend.ParsePermission(v)
		if err != nil {
			return out, tokend.Invalid("require", err.Error())
		}
		out.required = append(out.required, p)
	}
	return out, nil
}

// checkRequired is 403 unless caller holds every permission of required.
func (s *Server) checkRequired(r *http.Request, caller *tokend.Token, required []tokend.Permission) error {
	ok, err := s.verifier.Holds(r.Context(), caller, required)
	if err != nil {
		return err
	}
	if !ok {
		return tokend.Errorf(tokend.EFORBIDDEN, "This token lacks a permission this request requires")
	}
	return nil
}

// Change stream timing: a comment line keeps idle connections (and the
// proxies between) open, and each write must finish within writeWait.
// They are variables for the tests.
var (
	streamHeartbeat = 15 * time.Second
	streamWriteWait = 10 * time.Second
)

// authChanges streams the caller's account's authentication changes as
// Server-Sent Events, for caches outside tokend (the middleware, the
// gateway):
//
//	event: ready    once, first: forget everything cached before it
//	event: token    data {"token_id", "account_id"}: that token changed
//	event: account  data {"account_id"}: every token of the account changed
//	event: flush    data {}: forget everything
//
// The stream ends when the client goes, the server shuts down, the
// subscriber falls too far behind, or the caller's own token stops
// authenticating; a client that reconnects starts again from ready.
func (s *Server) authChanges(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	value, err := credential(r)
	if err != nil {
		return err
	}
	sub, err := s.svc.SubscribeAuthChanges(r.Context(), caller)
	if err != nil {
		if tokend.ErrorCode(err) == tokend.ERATELIMITED {
			w.Header().Set("Retry-After", "5") // until another stream of the account ends
		}
		return err
	}
	defer sub.Close()
	rc := http.NewResponseController(w)
	// The server's read timeout would end the request's context mid-stream.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events on at once
	w.WriteHeader(http.StatusOK)
	// Each write has streamWriteWait to reach the client; between writes
	// there is no deadline (over HTTP/2 a deadline left armed resets the
	// stream when it passes, even with nothing to write).
	send := func(format string, args ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteWait))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		if rc.Flush() != nil {
			return false
		}
		_ = rc.SetWriteDeadline(time.Time{})
		return true
	}
	if !send("retry: 1000\nevent: ready\ndata: {\"account_id\":%d}\n\n", caller.AccountID) {
		return nil
	}
	// The stream lasts as long as its token could open it again.
	client := tokend.ClientAddr(r.Context())
	stillValid := func() bool {
		t, err := s.svc.Authenticate(r.Context(), value)
		return err == nil && t.ID == caller.ID && tokend.MayVerify(t) == nil && t.Guards().AllowsIP(client)
	}
	beat := time.NewTicker(streamHeartbeat)
	defer beat.Stop()
	var expired <-chan time.Time // the caller's token stops working
	if caller.ExpiresAt != nil {
		t := time.NewTimer(caller.ExpiresAt.Sub(s.opts.Now()))
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-expired:
			return nil
		case <-s.opts.Done:
			return nil
		case <-beat.C:
			if !stillValid() || !send(": ping\n\n") {
				return nil
			}
		case e, ok := <-sub.C:
			if !ok {
				return nil // fell behind: the client reconnects and starts over
			}
			var sent bool
			switch {
			case e.Flush():
				sent = send("event: flush\ndata: {}\n\n")
			case e.TokenID != 0:
				sent = send("event: token\ndata: {\"token_id\":%d,\"account_id\":%d}\n\n", e.TokenID, e.AccountID)
			default:
				sent = send("event: account\ndata: {\"account_id\":%d}\n\n", e.AccountID)
			}
			if !sent || (e.TokenID == caller.ID || e.TokenID == 0) && !stillValid() {
				return nil
			}
		}
	}
}
