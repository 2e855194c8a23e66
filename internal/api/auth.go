package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/tokend/tokend"
)

type callerKey struct{}

// callerSlot carries the authenticated token back out to the access log.
type callerSlot struct{ token *tokend.Token }

var (
	errNoCredentials = &tokend.Error{Code: tokend.EUNAUTHORIZED, Message: "Missing API token: send it as Api-Token or Authorization: Bearer", Reason: "missing_api_key"}
	errBadScheme     = &tokend.Error{Code: tokend.EUNAUTHORIZED, Message: "The Authorization header must use the Bearer scheme", Reason: "invalid_api_key"}
	errTwoTokens     = &tokend.Error{Code: tokend.EUNAUTHORIZED, Message: "The Api-Token and Authorization headers carry different tokens", Reason: "invalid_api_key"}
)

// credential returns the token value a request presents in Api-Token or
// Authorization: Bearer. When both carry a token they must agree.
func credential(r *http.Request) (string, error) {
	var header, bearer string
	if vs := r.Header.Values("Api-Token"); len(vs) > 0 {
		header = strings.TrimSpace(vs[0])
		for _, v := range vs[1:] {
			if strings.TrimSpace(v) != header {
				return "", errTwoTokens
			}
		}
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, value, ok := strings.Cut(strings.TrimSpace(auth), " ")
		switch {
		case ok && strings.EqualFold(scheme, "Bearer"):
			bearer = strings.TrimSpace(value)
		case header == "":
			return "", errBadScheme
		}
		// Another scheme (Basic for a proxy, say) beside Api-Token carries no token.
	}
	switch {
	case header == "" && bearer == "":
		return "", errNoCredentials
	case header != "" && bearer != "" && header != bearer:
		return "", errTwoTokens
	case header != "":
		return header, nil
	}
	return bearer, nil
}

// authedHandler is a handler that runs on behalf of an authenticated token.
type authedHandler func(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error

// authed authenticates the request, checks that an {account_id} in the path is
// the caller's own (404 otherwise, so other accounts stay invisible), runs h,
// and writes any error it returns.
func (s *Server) authed(h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, err := s.authenticate(r)
		if err == nil {
			if slot, ok := r.Context().Value(callerKey{}).(*callerSlot); ok {
				slot.token = caller
			}
			if v := r.PathValue("account_id"); v != "" {
				if id, perr := strconv.ParseInt(v, 10, 64); perr != nil || id != caller.AccountID {
					err = errNotFound
				}
			}
		}
		if err == nil {
			err = h(w, r, caller)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) authenticate(r *http.Request) (*tokend.Token, error) {
	value, err := credential(r)
	if err != nil {
		return nil, err
	}
	return s.svc.Authenticate(r.Context(), value)
}
