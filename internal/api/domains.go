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
