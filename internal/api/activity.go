package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/tokend/tokend"
)

type usageDay struct {
	Date        string `json:"date"`
	Success     int64  `json:"success"`
	ClientError int64  `json:"client_error"`
	RateLimited int64  `json:"rate_limited"`
	ServerError int64  `json:"server_error"`
	Total       int64  `json:"total"`
}

func (s *Server) tokenUsage(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	u, err := s.svc.Usage(r.Context(), caller, id)
	if err != nil {
		return err
	}
	days := []usageDay{}
	for _, d := range u.Days() {
		days = append(days, usageDay{Date: d.Date, Success: d.Success, ClientError: d.ClientError,
			RateLimited: d.RateLimited, ServerError: d.ServerError, Total: d.Total})
	}
	encode(w, http.StatusOK, map[string]any{"token_id": u.TokenID, "last_used_at": u.LastUsedAt, "days": days})
	return nil
}

type auditEventJSON struct {
	ID           int64          `json:"id"`
	At           time.Time      `json:"at"`
	Action       string         `json:"action"`
	Actor        string         `json:"actor"`
	ActorTokenID *int64         `json:"actor_token_id"`
	TargetType   string         `json:"target_type"`
	TargetID     *int64         `json:"target_id"`
	ClientAddr   string         `json:"client_addr"`
	Details      map[string]any `json:"details"`
}

func optionalID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

func (s *Server) auditLog(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return tokend.Invalid("limit", "must be an integer between 1 and 200")
		}
		limit = n
	}
	page, err := s.svc.AuditLog(r.Context(), caller, q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	out := make([]auditEventJSON, len(page.Events))
	for i, e := range page.Events {
		details := e.Details
		if details == nil {
			details = map[string]any{}
		}
		out[i] = auditEventJSON{ID: e.ID, At: e.At, Action: e.Action, Actor: e.Actor, ActorTokenID: optionalID(e.ActorTokenID),
			TargetType: e.TargetType, TargetID: optionalID(e.TargetID), ClientAddr: e.ClientAddr, Details: details}
	}
	var next *string
	if page.NextCursor != "" {
		next = &page.NextCursor
	}
	encode(w, http.StatusOK, map[string]any{"data": out, "next_cursor": next})
	return nil
}
