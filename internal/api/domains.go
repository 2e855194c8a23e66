package api

import (
	"net/http"

	"github.com/tokend/tokend"
)

// verifyDomain checks a domain's DNS records now and answers the domain.
func (s *Server) verifyDomain(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	v, err := s.domains.Verify(r.Context(), caller, id)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toDomainJSON(*v))
	return nil
}

// sendSetupInstructions mails a domain's records to {"email"}: 204.
func (s *Server) sendSetupInstructions(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var body struct {
		Email string `json:"email"`
	}
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if err := s.domains.SendSetupInstructions(r.Context(), caller, id, body.Email); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// updateDomain takes Mailtrap's sending domain settings,
// {"sending_domain": {"open_tracking_enabled": false, ...}}, and answers the
// domain; tokend has none of those features, so only false is accepted.
func (s *Server) updateDomain(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var body struct {
		SendingDomain *struct {
			OpenTracking        *bool `json:"open_tracking_enabled"`
			ClickTracking       *bool `json:"click_tracking_enabled"`
			TrackingOptOut      *bool `json:"tracking_opt_out_enabled"`
			AutoUnsubscribeLink *bool `json:"auto_unsubscribe_link_enabled"`
			Inbound             *bool `json:"inbound_enabled"`
		} `json:"sending_domain"`
	}
	if err := decode(w, r, &body); err != nil {
		return err
	}
	if body.SendingDomain == nil {
		return tokend.Invalid("sending_domain", "is required")
	}
	in := body.SendingDomain
	v, err := s.domains.UpdateSettings(r.Context(), caller, id, tokend.DomainSettings{OpenTracking: in.OpenTracking,
		ClickTracking: in.ClickTracking, TrackingOptOut: in.TrackingOptOut, AutoUnsubscribeLink: in.AutoUnsubscribeLink, Inbound: in.Inbound})
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toDomainJSON(*v))
	return nil
}
