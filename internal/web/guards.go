package web

// A token's guards in the dashboard: the fields of the token form, read
// back into the domain's input, and the list's summary.

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend"
)

// guardFields are the token form's guard fields, as typed.
type guardFields struct {
	AllowedIPs string // one address or network per line (commas too)
	RateLimit  string // requests, empty for none
	RatePer    string // "1", "60", "3600" or "86400" seconds
	Quota      string // units, empty for none
	QuotaPer   string // day or month
	QuotaUnit  string // requests or emails
}

// ratePeriods are the periods the form offers, in seconds.
var ratePeriods = []struct{ Seconds, Name string }{{"1", "second"}, {"60", "minute"}, {"3600", "hour"}, {"86400", "day"}}

// fieldsOf is t's guards as the form shows them.
func fieldsOf(t *tokend.Token) guardFields {
	f := guardFields{RatePer: "60", QuotaPer: "month", QuotaUnit: "requests"}
	if t == nil {
		return f
	}
	ips := make([]string, len(t.AllowedIPs))
	for i, p := range t.AllowedIPs {
		ips[i] = tokend.FormatAllowedIP(p)
	}
	f.AllowedIPs = strings.Join(ips, "\n")
	if r := t.RateLimit; r != nil {
		f.RateLimit, f.RatePer = strconv.Itoa(r.Limit), strconv.FormatInt(int64(r.Per/time.Second), 10)
	}
	if q := t.Quota; q != nil {
		f.Quota, f.QuotaPer, f.QuotaUnit = strconv.FormatInt(q.Limit, 10), string(q.Period), string(q.Unit)
	}
	return f
}

// readGuards reads the form's guard fields into what the service changes:
// every guard, set or removed, when the form had them (an account admin's
// form), nothing otherwise.
func readGuards(r *http.Request) (guardFields, tokend.GuardsInput, error) {
	f := guardFields{AllowedIPs: r.PostFormValue("allowed_ips"), RateLimit: strings.TrimSpace(r.PostFormValue("rate_limit")),
		RatePer: r.PostFormValue("rate_per"), Quota: strings.TrimSpace(r.PostFormValue("quota")),
		QuotaPer: r.PostFormValue("quota_per"), QuotaUnit: r.PostFormValue("quota_unit")}
	var in tokend.GuardsInput
	if r.PostFormValue("guards") != "1" {
		return f, in, nil
	}
	var fe tokend.FieldErrors
	ips := []netip.Prefix{}
	for _, s := range strings.FieldsFunc(f.AllowedIPs, func(c rune) bool { return c == ',' || c == '\n' || c == '\r' || c == ' ' || c == '\t' }) {
		p, err := tokend.ParseAllowedIP(s)
		if err != nil {
			fe.Add("allowed_ips", err.Error())
			continue
		}
		ips = append(ips, p)
	}
	in.AllowedIPs = &ips
	var rate *tokend.Rate
	if f.RateLimit != "" {
		n, err := strconv.Atoi(f.RateLimit)
		per, perr := strconv.Atoi(f.RatePer)
		if err != nil || n <= 0 {
			fe.Add("rate_limit", "must be a whole number of requests, or empty for none")
		} else if perr != nil {
			fe.Add("rate_limit", "needs a period")
		} else {
			rate = &tokend.Rate{Limit: n, Per: time.Duration(per) * time.Second}
		}
	}
	in.RateLimit = &rate
	var quota *tokend.Quota
	if f.Quota != "" {
		n, err := strconv.ParseInt(f.Quota, 10, 64)
		if err != nil || n <= 0 {
			fe.Add("quota", "must be a whole number, or empty for none")
		} else {
			quota = &tokend.Quota{Limit: n, Period: tokend.QuotaPeriod(f.QuotaPer), Unit: tokend.QuotaUnit(f.QuotaUnit)}
		}
	}
	in.Quota = &quota
	return f, in, fe.Err()
}

// guardSummary says a token's guards in a few words for the list: "any"
// when it has none.
func guardSummary(t tokend.Token, now time.Time) string {
	var parts []string
	switch n := len(t.AllowedIPs); {
	case n == 1:
		parts = append(parts, "from "+tokend.FormatAllowedIP(t.AllowedIPs[0]))
	case n > 1:
		parts = append(parts, fmt.Sprintf("from %d networks", n))
	}
	if r := t.RateLimit; r != nil {
		parts = append(parts, fmt.Sprintf("%d per %s", r.Limit, periodWord(r.Per)))
	}
	if q := tokend.QuotaOf(&t, now); q != nil {
		parts = append(parts, fmt.Sprintf("%d of %d %s left this %s", q.Remaining, q.Limit, q.Unit, q.Period))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ")
}

func periodWord(d time.Duration) string {
	for _, p := range ratePeriods {
		if s, _ := strconv.Atoi(p.Seconds); time.Duration(s)*time.Second == d {
			return p.Name
		}
	}
	return d.String()
}
