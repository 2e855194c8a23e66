package api

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/tokend/tokend"
)

// usageReportInput is the body of POST /api/usage_reports.
type usageReportInput struct {
	Reports []struct {
		TokenSHA256 string                   `json:"token_sha256"`
		Requests    map[tokend.Outcome]int64 `json:"requests"`
		Want        int                      `json:"want"`
	} `json:"reports"`
}

// leaseJSON is one token's part of a POST /api/usage_reports answer.
type leaseJSON struct {
	TokenID    int64             `json:"token_id,omitempty"`
	Code       tokend.VerifyCode `json:"code"`
	Reason     string            `json:"reason,omitempty"`
	Granted    int               `json:"granted"`
	RetryAfter int64             `json:"retry_after_ms,omitempty"`
	RateLimit  *rateLimitState   `json:"ratelimit,omitempty"`
	Quota      *quotaJSON        `json:"quota,omitempty"`
}

// reportUsage answers POST /api/usage_reports: a service that admits
// requests on its own (the middleware, the gateway) reports them and asks
// for leases of more (see tokend.Verifier.ReportUsage). 200 with one lease
// per token, in the report's order.
func (s *Server) reportUsage(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error {
	var in usageReportInput
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if in.Reports == nil {
		return tokend.Invalid("reports", "can't be blank")
	}
	reports := make([]tokend.UsageReport, len(in.Reports))
	var fe tokend.FieldErrors
	for i, rep := range in.Reports {
		reports[i] = tokend.UsageReport{Requests: rep.Requests, Want: rep.Want}
		if b, err := hex.DecodeString(rep.TokenSHA256); err != nil || len(b) != len(reports[i].TokenHash) {
			fe.Add("reports["+strconv.Itoa(i)+"].token_sha256", "must be the SHA-256 of the token's value, as 64 hexadecimal digits")
		} else {
			copy(reports[i].TokenHash[:], b)
		}
	}
	if fe != nil {
		return &tokend.Error{Code: tokend.EINVALID, Message: "Validation failed", Fields: fe}
	}
	res, err := s.verifier.ReportUsage(r.Context(), caller, reports)
	h := w.Header()
	if res.MissesSet {
		setRateHeaders(h, res.Misses)
	}
	if err != nil {
		if tokend.ErrorCode(err) == tokend.ERATELIMITED && res.MissesSet {
			h.Set("Retry-After", seconds(res.Misses.RetryAfter))
		}
		return err
	}
	out := struct {
		Leases []leaseJSON `json:"leases"`
	}{make([]leaseJSON, len(res.Leases))}
	for i, l := range res.Leases {
		j := leaseJSON{TokenID: l.TokenID, Code: l.Code, Reason: l.Reason, Granted: l.Granted,
			RetryAfter: int64((l.RetryAfter + time.Millisecond - 1) / time.Millisecond)} // rounded up
		if l.LimitSet {
			j.RateLimit = &rateLimitState{Limit: l.Limit.Limit, Remaining: l.Limit.Remaining, Reset: ceilSeconds(l.Limit.Reset)}
		}
		if l.Quota != nil {
			j.Quota = quotaStateJSON(l.Quota)
		}
		out.Leases[i] = j
	}
	encode(w, http.StatusOK, out)
	return nil
}
