package api

import (
	"net/http"

	"github.com/tokend/tokend"
)

// tokenSettingsJSON is an account's token settings on the wire.
type tokenSettingsJSON struct {
	ExpiryWarningDays []int             `json:"expiry_warning_days"`
	LeakPolicy        tokend.LeakPolicy `json:"leak_policy"`
}

func toSettingsJSON(s tokend.TokenSettings) tokenSettingsJSON {
	days := s.ExpiryWarningDays
	if days == nil {
		days = []int{}
	}
	return tokenSettingsJSON{ExpiryWarningDays: days, LeakPolicy: s.LeakPolicy}
}

// tokenSettings answers GET /api/accounts/{account_id}/token_settings.
func (s *Server) tokenSettings(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	set, err := s.svc.TokenSettings(r.Context(), caller)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toSettingsJSON(set))
	return nil
}

// setTokenSettings answers PATCH .../token_settings: {"expiry_warning_days"?:
// [days], "leak_policy"?: "revoke"|"notify"}, account admins only.
func (s *Server) setTokenSettings(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	var in struct {
		ExpiryWarningDays *[]int             `json:"expiry_warning_days"`
		LeakPolicy        *tokend.LeakPolicy `json:"leak_policy"`
	}
	if err := decode(w, r, &in); err != nil {
		return err
	}
	set, err := s.svc.SetTokenSettings(r.Context(), caller, tokend.TokenSettingsPatch{ExpiryWarningDays: in.ExpiryWarningDays, LeakPolicy: in.LeakPolicy})
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toSettingsJSON(set))
	return nil
}

// secretScanning passes GitHub's reports to the handler the server was
// given, or answers 503 when the operator set none up (GitHub retries, so
// reports sent before the key file is in place are not lost).
func (s *Server) secretScanning(w http.ResponseWriter, r *http.Request) {
	if s.opts.SecretScanning == nil {
		w.Header().Set("Retry-After", "60")
		s.writeError(w, r, errNoSecretScanning)
		return
	}
	s.opts.SecretScanning.ServeHTTP(w, r)
}

var errNoSecretScanning = tokend.Errorf(tokend.EUNAVAILABLE, "Secret scanning reports are not taken here: the operator has not given tokend GitHub's keys (--secret-scanning-keys)")
