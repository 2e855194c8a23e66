package api

import (
	"net/http"
	"time"

	"github.com/tokend/tokend"
)

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	tokens, err := s.svc.ListTokens(r.Context(), caller)
	if err != nil {
		return err
	}
	out := make([]apiToken, len(tokens))
	for i := range tokens {
		out[i] = toAPIToken(&tokens[i], s.opts.Now())
	}
	encode(w, http.StatusOK, out)
	return nil
}

// unusedTokens answers GET .../api_tokens/unused?days=N (default 90): the
// tokens the caller can see that made no request in N days.
func (s *Server) unusedTokens(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	days, err := tokend.ParseUnusedDays(r.URL.Query().Get("days"))
	if err != nil {
		return err
	}
	tokens, err := s.svc.UnusedTokens(r.Context(), caller, days)
	if err != nil {
		return err
	}
	out := make([]apiToken, len(tokens))
	now := s.opts.Now()
	for i := range tokens {
		out[i] = toAPIToken(&tokens[i], now)
	}
	encode(w, http.StatusOK, out)
	return nil
}

func (s *Server) getToken(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	t, err := s.svc.GetToken(r.Context(), caller, id)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toAPIToken(t, s.opts.Now()))
	return nil
}

type createTokenRequest struct {
	Name        *string           `json:"name"`
	Resources   []permissionInput `json:"resources"`
	Environment *string           `json:"environment"`
	ExpiresAt   expiryInput       `json:"expires_at"`
	guardsInput
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	var req createTokenRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	perms, err := toPermissions(req.Resources)
	if err != nil {
		return err
	}
	in := tokend.TokenInput{Permissions: perms, Expiry: tokend.Expiry(req.ExpiresAt), Guards: req.guardsInput.domain()}
	if req.Name != nil {
		in.Name = *req.Name
	}
	if req.Environment != nil {
		in.Environment = tokend.Environment(*req.Environment)
		if in.Environment == "" {
			return tokend.Invalid("environment", "must be live or test")
		}
	}
	t, err := s.svc.CreateToken(r.Context(), caller, in)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toIssuedToken(t, s.opts.Now()))
	return nil
}

type updateTokenRequest struct {
	Name      *string            `json:"name"`
	Resources *[]permissionInput `json:"resources"`
	guardsInput
}

func (s *Server) updateToken(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req updateTokenRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	patch := tokend.TokenPatch{Name: req.Name, Guards: req.guardsInput.domain()}
	if req.Resources != nil {
		perms, err := toPermissions(*req.Resources)
		if err != nil {
			return err
		}
		patch.Permissions = &perms
	}
	t, err := s.svc.UpdateToken(r.Context(), caller, id, patch)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toAPIToken(t, s.opts.Now()))
	return nil
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	if err := s.svc.DeleteToken(r.Context(), caller, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type resetTokenRequest struct {
	ExpiresAt expiryInput `json:"expires_at"`
}

func (s *Server) resetToken(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req resetTokenRequest
	if err := decodeOptional(w, r, &req); err != nil {
		return err
	}
	t, err := s.svc.ResetToken(r.Context(), caller, id, tokend.Expiry(req.ExpiresAt))
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, toIssuedToken(t, s.opts.Now()))
	return nil
}

type whoamiJSON struct {
	ID          int64                `json:"id"`
	Name        string               `json:"name"`
	AccountID   int64                `json:"account_id"`
	Environment tokend.Environment   `json:"environment"`
	ExpiresAt   *time.Time           `json:"expires_at"`
	Resources   []resourcePermission `json:"resources"`
}

// whoami describes the calling token from what authentication already knows:
// no store access, so it is also the cheapest authenticated request.
func (s *Server) whoami(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	out := whoamiJSON{ID: caller.ID, Name: caller.Name, AccountID: caller.AccountID, Environment: caller.Environment,
		ExpiresAt: caller.ExpiresAt, Resources: make([]resourcePermission, len(caller.Permissions))}
	for i, p := range caller.Permissions {
		out.Resources[i] = resourcePermission{ResourceType: p.ResourceType, ResourceID: p.ResourceID, AccessLevel: p.Level}
	}
	encode(w, http.StatusOK, out)
	return nil
}
