package gateway

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// The bounds on request bodies when Options leaves them zero: a body must
// be in within 10 s of the request's headers (as the server bounds the
// headers themselves) plus a second for every 16 KiB, an average of about
// 128 kbit/s, which any link an API is used over keeps to.
const (
	DefaultBodyGrace   = 10 * time.Second
	DefaultBodyMinRate = 16 << 10 // bytes a second
)

// boundBody returns r's body made to keep to the bounds of BodyGrace and
// BodyMinRate (see slowBody), or r's body as it is when it has none or the
// connection takes no read deadlines (a test's recorder).
func (g *gateway) boundBody(w *answer, r *http.Request, st *requestState) io.ReadCloser {
	if r.Body == nil || r.Body == http.NoBody {
		return r.Body
	}
	b := &st.body
	*b = slowBody{ReadCloser: r.Body, rc: *http.NewResponseController(w.ResponseWriter), st: st,
		grace: g.opts.BodyGrace, rate: int64(g.opts.BodyMinRate)}
	if b.rc.SetReadDeadline(b.deadline()) != nil {
		return r.Body
	}
	return b
}

// slowBody is a request body that must arrive by its deadline: the grace
// after the request's headers, plus a second for every rate bytes received
// so far. It moves the connection's read deadline as bytes come, so a read
// past it fails and the upstream request, which streams the body, ends
// with it; the request is marked timed out for the answer (408). Once the
// body is in, the deadline is lifted: the upstream may take its time.
type slowBody struct {
	io.ReadCloser
	rc    http.ResponseController
	st    *requestState
	grace time.Duration
	rate  int64
	n     int64 // bytes received
}

func (b *slowBody) deadline() time.Time {
	earned := time.Duration(b.n/b.rate)*time.Second + time.Duration(b.n%b.rate)*time.Second/time.Duration(b.rate)
	return b.st.start.Add(b.grace + earned)
}

func (b *slowBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	switch {
	case err == io.EOF:
		// The connection's reads are the server's again: its watch for a
		// client gone away while the upstream answers, the next request.
		// (net/http lifts the deadline itself at the end of an HTTP/1
		// body, and an HTTP/2 stream's ends with it: this does not rely
		// on either.)
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil:
		if errors.Is(err, os.ErrDeadlineExceeded) {
			b.st.bodyTimedOut.Store(true)
		}
	case n > 0:
		_ = b.rc.SetReadDeadline(b.deadline())
	}
	return n, err
}
