// Package mailtest checks messages as tokend hands them to a relay, for the
// tests of the packages that compose, store and deliver them.
package mailtest

import (
	"bufio"
	"bytes"
	"fmt"
	"net/textproto"
	"strings"

	"github.com/emersion/go-message"
)

// WireProblems returns what is wrong with a message as tokend hands it to a
// relay, or nothing:
//   - a CR or an LF outside a CRLF pair (relays differ on what a bare one
//     ends, which is what SMTP smuggling plays on);
//   - once dot-stuffed as an SMTP client sends it, a "." alone between any
//     two line breaks, CR, LF or CRLF, which a lenient relay reads as the end
//     of the data;
//   - an entity that does not parse, or one that is not tokend's: a leaf that
//     is neither base64 nor quoted-printable, an attachment (a part with a
//     Content-Disposition) that is not base64, a message/* part, or a
//     multipart/* part with a Content-Disposition.
func WireProblems(raw []byte) []string {
	var out []string
	for i, b := range raw {
		if b == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') {
			out = append(out, fmt.Sprintf("a bare CR at byte %d: %q", i, around(raw, i)))
		}
		if b == '\n' && (i == 0 || raw[i-1] != '\r') {
			out = append(out, fmt.Sprintf("a bare LF at byte %d: %q", i, around(raw, i)))
		}
	}
	var stuffed bytes.Buffer
	bw := bufio.NewWriter(&stuffed)
	dw := textproto.NewWriter(bw).DotWriter()
	dw.Write(raw)
	dw.Close()
	bw.Flush()
	data := bytes.TrimSuffix(stuffed.Bytes(), []byte("\r\n.\r\n")) // the client's own end of data
	for i, b := range data {
		if b == '.' && (i == 0 || isBreak(data[i-1])) && (i+1 == len(data) || isBreak(data[i+1])) {
			out = append(out, fmt.Sprintf("a line of a lone \".\" after dot-stuffing at byte %d: %q", i, around(data, i)))
		}
	}
	ent, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		return append(out, "the message does not parse: "+err.Error())
	}
	err = ent.Walk(func(path []int, e *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) {
			return err
		}
		mt, _, _ := e.Header.ContentType()
		cte := strings.ToLower(e.Header.Get("Content-Transfer-Encoding"))
		disposition := e.Header.Get("Content-Disposition")
		switch {
		case strings.HasPrefix(mt, "multipart/") && disposition != "":
			out = append(out, fmt.Sprintf("part %v is a multipart attachment (%s)", path, mt))
		case strings.HasPrefix(mt, "multipart/"):
		case strings.HasPrefix(mt, "message/"):
			out = append(out, fmt.Sprintf("part %v is a %s part", path, mt))
		case disposition != "" && cte != "base64":
			out = append(out, fmt.Sprintf("attachment part %v (%s) is %q, not base64", path, mt, cte))
		case cte != "base64" && cte != "quoted-printable":
			out = append(out, fmt.Sprintf("part %v (%s) is %q, neither base64 nor quoted-printable", path, mt, cte))
		}
		return nil
	})
	if err != nil {
		out = append(out, "the message does not parse: "+err.Error())
	}
	return out
}

func isBreak(b byte) bool { return b == '\r' || b == '\n' }

func around(b []byte, i int) []byte { return b[max(0, i-20):min(len(b), i+20)] }
