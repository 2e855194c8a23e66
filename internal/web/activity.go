package web

// Activity: a token's usage by day, and the account's audit log.

import (
	"net/http"
	"net/url"

	"github.com/tokend/tokend"
)

type usageData struct {
	Token *tokend.Token
	Days  []tokend.UsageDay
	Max   int64
	Total int64
	Bars  []svgBar
	Width int
}

// svgBar is one day of the chart, laid out in Go: the page's strict CSP
// allows no inline styles, and an SVG needs none.
type svgBar struct {
	X, Y, W, H, TX int
	Date, Label    string
	Total          int64
}

func (s *Server) tokenUsage(w http.ResponseWriter, r *http.Request, ses *session) error {
	id, err := s.pathID(r)
	if err != nil {
		return err
	}
	t, err := s.svc.GetToken(r.Context(), ses.Principal, id)
	if err != nil {
		return err
	}
	u, err := s.svc.Usage(r.Context(), ses.Principal, id)
	if err != nil {
		return err
	}
	d := usageData{Token: t, Days: u.Days()}
	for _, b := range d.Days {
		d.Total += b.Total
	}
	for _, b := range d.Days {
		d.Max = max(d.Max, b.Total)
	}
	const barW, gap, plot = 28, 8, 100
	d.Width = max(len(d.Days)*(barW+gap), barW+gap)
	for i, b := range d.Days {
		h := 0
		if d.Max > 0 {
			h = int(b.Total * plot / d.Max)
		}
		x := i * (barW + gap)
		d.Bars = append(d.Bars, svgBar{X: x, Y: plot - h, W: barW, H: h, TX: x + barW/2, Date: b.Date, Label: b.Date[5:], Total: b.Total})
	}
	s.render(w, r, http.StatusOK, "usage", view{Title: "Usage of " + t.Name, Session: ses, Data: d})
	return nil
}

type auditData struct {
	Events []tokend.AuditEvent
	Next   string
}

func (s *Server) auditLog(w http.ResponseWriter, r *http.Request, ses *session) error {
	page, err := s.svc.AuditLog(r.Context(), ses.Principal, r.URL.Query().Get("cursor"), 50)
	if err != nil {
		return err
	}
	d := auditData{Events: page.Events}
	if page.NextCursor != "" {
		d.Next = "/audit-log?cursor=" + url.QueryEscape(page.NextCursor)
	}
	s.render(w, r, http.StatusOK, "audit", view{Title: "Audit log", Session: ses, Data: d})
	return nil
}
