package smtpd_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-msgauth/dkim"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/testutil"
)

// The submission server with the mail clients apps use: Python's smtplib,
// Node's nodemailer and Go's net/smtp, each speaking to the listeners as it
// does to any provider's, and the relay checked for what came out.

// What the clients send: a UTF-8 subject, text and HTML alternatives, and a
// small binary attachment with every byte value.
const (
	clientSubject = "Grüße aus Köln — 100 € für Zoë"
	clientText    = "Hello Zoë,\nthe report is attached.\n"
	clientHTML    = "<p>Hello <b>Zoë</b>,</p>\n<p>the report is attached.</p>\n"
	clientFile    = "report.bin"
)

var clientAttachment = func() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}()

// tool finds a program a test runs; scripts/test installs the missing ones.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed to run this test (scripts/test installs it): %v", name, err)
	}
	return path
}

// runJSON runs cmd with input as JSON on its standard input and decodes the
// last line it prints, a JSON document, into out.
func runJSON(t *testing.T, cmd *exec.Cmd, input, out any) {
	t.Helper()
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(cmd.Path), err, stdout.Bytes(), stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), out); err != nil {
		t.Fatalf("%s printed %q: %v\nstderr:\n%s", filepath.Base(cmd.Path), stdout.Bytes(), err, stderr.Bytes())
	}
}

// byRecipient indexes relayed mail by its one envelope recipient; a
// recipient that got two copies fails the test.
func byRecipient(t *testing.T, mails []testutil.Mail) map[string]testutil.Mail {
	t.Helper()
	out := map[string]testutil.Mail{}
	for _, m := range mails {
		if len(m.To) != 1 {
			t.Fatalf("relayed to %v at once, want one recipient per copy", m.To)
		}
		if _, dup := out[m.To[0]]; dup {
			t.Fatalf("%s got two copies", m.To[0])
		}
		out[m.To[0]] = m
	}
	return out
}

// settled waits for n relayed messages, then a moment more, and fails if
// any more than n arrived: what must not be relayed has had its chance.
func (e *env) settled(t *testing.T, n int) map[string]testutil.Mail {
	t.Helper()
	e.relay.WaitMails(t, n, 15*time.Second)
	time.Sleep(300 * time.Millisecond)
	mails := e.relay.Mails()
	if len(mails) != n {
		var to [][]string
		for _, m := range mails {
			to = append(to, m.To)
		}
		t.Fatalf("the relay got %d messages, want %d: %v", len(mails), n, to)
	}
	return byRecipient(t, mails)
}

// relayed is a relayed message as a mail reader sees it.
type relayed struct {
	header mail.Header
	text   string // the text/plain part, line ends as LF
	html   string // the text/html part, line ends as LF
	files  map[string][]byte
}

func parseRelayed(t *testing.T, data []byte) relayed {
	t.Helper()
	mr, err := mail.CreateReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("relayed message does not parse: %v\n%s", err, data)
	}
	r := relayed{header: mr.Header, files: map[string][]byte{}}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("relayed message's parts do not parse: %v\n%s", err, data)
		}
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatalf("relayed part does not decode: %v\n%s", err, data)
		}
		switch h := p.Header.(type) {
		case *mail.InlineHeader:
			ct, _, _ := h.ContentType()
			switch ct {
			case "text/plain":
				r.text = strings.ReplaceAll(string(body), "\r\n", "\n")
			case "text/html":
				r.html = strings.ReplaceAll(string(body), "\r\n", "\n")
			default:
				t.Errorf("unexpected inline part %s", ct)
			}
		case *mail.AttachmentHeader:
			name, err := h.Filename()
			if err != nil {
				t.Errorf("attachment filename: %v", err)
			}
			r.files[name] = body
		}
	}
	return r
}

// checkRelayed checks a relayed message carries what the client sent:
// subject, sender, text, HTML and attachment, no Bcc, a Message-ID, a DKIM
// signature of example.com that verifies against the published key, and
// the return path of a message the client was told was accepted.
func (e *env) checkRelayed(t *testing.T, m testutil.Mail, subject, text, html string, files map[string][]byte, accepted string) relayed {
	t.Helper()
	rcpt := m.To[0]
	r := parseRelayed(t, m.Data)
	if got, err := r.header.Subject(); err != nil || got != subject {
		t.Errorf("%s: subject %q (%v), want %q", rcpt, got, err, subject)
	}
	if from, err := r.header.AddressList("From"); err != nil || len(from) != 1 || from[0].Address != "ann@example.com" {
		t.Errorf("%s: From %v (%v), want ann@example.com", rcpt, from, err)
	}
	if r.text != text {
		t.Errorf("%s: text part %q, want %q", rcpt, r.text, text)
	}
	if r.html != html {
		t.Errorf("%s: HTML part %q, want %q", rcpt, r.html, html)
	}
	if len(r.files) != len(files) {
		t.Errorf("%s: attachments %v, want %d", rcpt, slices.Collect(maps.Keys(r.files)), len(files))
	}
	for name, want := range files {
		if got, ok := r.files[name]; !ok || !bytes.Equal(got, want) {
			t.Errorf("%s: attachment %s is %x, want %x", rcpt, name, got, want)
		}
	}
	if r.header.Has("Bcc") || bytes.Contains(bytes.ToLower(m.Data), []byte("\nbcc:")) {
		t.Errorf("%s: a Bcc field was relayed:\n%s", rcpt, m.Data)
	}
	if r.header.Get("Message-Id") == "" {
		t.Errorf("%s: relayed without a Message-ID", rcpt)
	}
	e.checkDKIM(t, rcpt, m.Data)
	id, ok := tokend.ReturnPathMessage(m.From, bounceDomain)
	if !ok || !strings.Contains(accepted, id) {
		t.Errorf("%s: return path %q is not of a message the client was told was accepted (%q)", rcpt, m.From, accepted)
	}
	return r
}

// checkDKIM verifies a relayed message's DKIM signature against the key
// example.com publishes.
func (e *env) checkDKIM(t *testing.T, rcpt string, data []byte) {
	t.Helper()
	d, err := e.a.Service.GetResource(context.Background(), &e.admin.Token, tokend.ResourceDomain, e.domain)
	if err != nil {
		t.Fatal(err)
	}
	var name, value string
	for _, r := range d.DNS {
		if r.Key == "dkim" {
			name, value = r.Domain, r.Value
		}
	}
	if name == "" {
		t.Fatalf("example.com publishes no DKIM record: %+v", d.DNS)
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{LookupTXT: func(n string) ([]string, error) {
		if n != name {
			return nil, fmt.Errorf("looked up %s, example.com publishes %s", n, name)
		}
		return []string{value}, nil
	}})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "example.com" {
		t.Errorf("%s: DKIM-Signature of d=example.com does not verify: %v %+v\n%s", rcpt, err, vs, data)
	}
}

// pySMTP sends with Python's smtplib, as scenarios named on the command
// line; it reads its configuration as JSON on stdin and prints what each
// scenario did as one JSON object.
const pySMTP = `
import base64, json, smtplib, ssl, sys
from email.message import EmailMessage

cfg = json.load(sys.stdin)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # tokend's self-signed certificate on loopback

def hostport(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)

def message(subject, to, cc=None, bcc=None):
    m = EmailMessage()
    m["From"] = "Ann Example <ann@example.com>"
    m["To"] = to
    if cc:
        m["Cc"] = cc
    if bcc:
        m["Bcc"] = bcc
    m["Subject"] = subject
    m.set_content(cfg["text"])
    m.add_alternative(cfg["html"], subtype="html")
    m.add_attachment(base64.b64decode(cfg["attachment"]), maintype="application", subtype="octet-stream", filename=cfg["filename"])
    return m

def data_replies(s):
    # sendmail checks the reply to DATA and drops it: keep it.
    replies, data = [], s.data
    def wrapped(msg):
        code, resp = data(msg)
        replies.append({"code": code, "text": resp.decode()})
        return code, resp
    s.data = wrapped
    return replies

def refused(d):
    return {k: [c, r.decode()] for k, (c, r) in d.items()}

def error(e):
    out = {"type": type(e).__name__, "message": str(e)}
    if hasattr(e, "smtp_code"):
        out["code"] = e.smtp_code
        out["reply"] = e.smtp_error.decode() if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
    return out

def starttls():
    s = smtplib.SMTP(*hostport(cfg["smtp"]), local_hostname="client.test", timeout=10)
    s.ehlo()
    before = {"auth": s.has_extn("auth"), "starttls": s.has_extn("starttls")}
    s.starttls(context=ctx)
    s.ehlo()
    return s, before

def send(s, msg):
    replies = data_replies(s)
    return {"refused": refused(s.send_message(msg)), "data": replies}

def scenario_starttls():
    s, before = starttls()
    r = {"before_tls": before, "tls": s.sock.version(), "auth": s.esmtp_features.get("auth", "").split()}
    r["login"] = s.login("api", cfg["live"])[0]
    r.update(send(s, message(cfg["subject"], "Bob <bob@example.org>", cc="carl@example.org", bcc="Dora <dora@example.org>")))
    s.quit()
    return r

def scenario_implicit():
    s = smtplib.SMTP_SSL(*hostport(cfg["smtps"]), local_hostname="client.test", timeout=10, context=ctx)
    s.ehlo()
    r = {"tls": s.sock.version(), "auth": s.esmtp_features.get("auth", "").split()}
    s.user, s.password = "api", cfg["live"]
    r["login"] = s.auth("LOGIN", s.auth_login, initial_response_ok=False)[0]
    r.update(send(s, message("Over implicit TLS", "erin@example.org")))
    s.quit()
    # AUTH LOGIN again, with the username as the initial response.
    s = smtplib.SMTP_SSL(*hostport(cfg["smtps"]), local_hostname="client.test", timeout=10, context=ctx)
    s.ehlo()
    s.user, s.password = "api", cfg["live"]
    r["login_initial"] = s.auth("LOGIN", s.auth_login)[0]
    s.quit()
    return r

def scenario_wrong_password():
    s, _ = starttls()
    try:
        s.login("api", cfg["bad"])
        return {"login": "accepted"}
    finally:
        s.close()

def scenario_viewer():
    s, _ = starttls()
    r = {"login": s.login("api", cfg["viewer"])[0]}
    try:
        r.update(send(s, message("From a viewer", "bob@example.org")))
    except smtplib.SMTPSenderRefused as e:
        r["error"] = error(e)
        r["noop"] = s.noop()[0]  # the session goes on
    s.quit()
    return r

def scenario_test_key():
    s, _ = starttls()
    r = {"login": s.login("api", cfg["test"])[0]}
    r.update(send(s, message(cfg["subject"], "bob@example.org")))
    s.quit()
    return r

out = {}
for name in sys.argv[1:]:
    try:
        out[name] = globals()["scenario_" + name]()
    except Exception as e:
        out[name] = {"error": error(e)}
print(json.dumps(out))
`

type pyError struct {
	Type, Message, Reply string
	Code                 int
}

type smtpReply struct {
	Code int
	Text string
}

type pyResult struct {
	Error     *pyError
	BeforeTLS *struct{ Auth, STARTTLS bool } `json:"before_tls"`
	TLS       string
	Auth      []string
	Login     any
	LoginInit int `json:"login_initial"`
	Refused   map[string]any
	Data      []smtpReply
	Noop      int
}

// python runs pySMTP's scenarios against e.
func (e *env) python(t *testing.T, scenarios ...string) map[string]pyResult {
	t.Helper()
	python := tool(t, "python3")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{"-c", pySMTP}, scenarios...)...)
	cfg := map[string]string{
		"smtp": e.smtp, "smtps": e.smtps, "live": e.live, "test": e.test, "viewer": e.viewer,
		"bad":     "tk_live_" + strings.Repeat("x", 36),
		"subject": clientSubject, "text": clientText, "html": clientHTML,
		"attachment": base64.StdEncoding.EncodeToString(clientAttachment), "filename": clientFile,
	}
	var out map[string]pyResult
	runJSON(t, cmd, cfg, &out)
	for _, s := range scenarios {
		if _, ok := out[s]; !ok {
			t.Fatalf("python printed no result of %s: %+v", s, out)
		}
	}
	return out
}

// accepted checks a client was answered 250 to one DATA, naming n message
// ids, and returns the reply.
func accepted(t *testing.T, what string, data []smtpReply, n int) string {
	t.Helper()
	if len(data) != 1 || data[0].Code != 250 || !strings.HasPrefix(data[0].Text, "2.0.0 OK: queued as ") {
		t.Fatalf("%s: DATA answered %+v, want 250 2.0.0 OK: queued as …", what, data)
	}
	if ids := strings.Fields(strings.TrimPrefix(data[0].Text, "2.0.0 OK: queued as ")); len(ids) != n {
		t.Fatalf("%s: DATA answered %q, want %d message ids", what, data[0].Text, n)
	}
	return data[0].Text
}

// Python's smtplib: STARTTLS with AUTH PLAIN and a multipart message to
// To, Cc and Bcc recipients; implicit TLS with AUTH LOGIN; a wrong password
// and a viewer token refused with the codes smtplib raises on.
func TestPythonSmtplib(t *testing.T) {
	e := newEnv(t, nil)
	out := e.python(t, "starttls", "implicit", "wrong_password", "viewer")

	st := out["starttls"]
	if st.Error != nil {
		t.Fatalf("STARTTLS session failed: %+v", *st.Error)
	}
	if st.BeforeTLS == nil || st.BeforeTLS.Auth || !st.BeforeTLS.STARTTLS {
		t.Errorf("before STARTTLS the server offered %+v, want STARTTLS and no AUTH", st.BeforeTLS)
	}
	if !strings.HasPrefix(st.TLS, "TLSv1.") || !slices.Contains(st.Auth, "PLAIN") || !slices.Contains(st.Auth, "LOGIN") {
		t.Errorf("after STARTTLS: %s, AUTH %v; want TLS and AUTH PLAIN LOGIN", st.TLS, st.Auth)
	}
	if st.Login != float64(235) || len(st.Refused) != 0 {
		t.Errorf("login answered %v, refused recipients %v", st.Login, st.Refused)
	}
	reply := accepted(t, "STARTTLS", st.Data, 3)

	im := out["implicit"]
	if im.Error != nil {
		t.Fatalf("implicit TLS session failed: %+v", *im.Error)
	}
	if !strings.HasPrefix(im.TLS, "TLSv1.") || im.Login != float64(235) || im.LoginInit != 235 || len(im.Refused) != 0 {
		t.Errorf("implicit TLS: %s, AUTH LOGIN answered %v, with an initial response %d, refused %v", im.TLS, im.Login, im.LoginInit, im.Refused)
	}
	implicitReply := accepted(t, "implicit TLS", im.Data, 1)

	if wp := out["wrong_password"]; wp.Error == nil || wp.Error.Type != "SMTPAuthenticationError" || wp.Error.Code != 535 || !strings.HasPrefix(wp.Error.Reply, "5.7.8 ") {
		t.Errorf("wrong password: login %v, error %+v; want SMTPAuthenticationError 535 5.7.8", wp.Login, wp.Error)
	}
	v := out["viewer"]
	if v.Login != float64(235) || v.Error == nil || v.Error.Type != "SMTPSenderRefused" || v.Error.Code != 550 ||
		!strings.HasPrefix(v.Error.Reply, "5.7.1 ") || !strings.Contains(v.Error.Reply, "admin access to the sending domain example.com") {
		t.Errorf("viewer token: login %v, error %+v, DATA %+v; want AUTH accepted and SMTPSenderRefused 550 5.7.1", v.Login, v.Error, v.Data)
	}
	if v.Noop != 250 {
		t.Errorf("after the refused sender the session answered NOOP %d, want 250", v.Noop)
	}

	// One copy to each of To, Cc and Bcc, one over implicit TLS; nothing
	// from the viewer.
	got := e.settled(t, 4)
	files := map[string][]byte{clientFile: clientAttachment}
	for _, rcpt := range []string{"bob@example.org", "carl@example.org", "dora@example.org"} {
		m, ok := got[rcpt]
		if !ok {
			t.Errorf("%s got no copy", rcpt)
			continue
		}
		r := e.checkRelayed(t, m, clientSubject, clientText, clientHTML, files, reply)
		if to, _ := r.header.AddressList("To"); len(to) != 1 || to[0].Address != "bob@example.org" || to[0].Name != "Bob" {
			t.Errorf("%s: To %v", rcpt, to)
		}
		if cc, _ := r.header.AddressList("Cc"); len(cc) != 1 || cc[0].Address != "carl@example.org" {
			t.Errorf("%s: Cc %v", rcpt, cc)
		}
		if bytes.Contains(m.Data, []byte("dora@example.org")) {
			t.Errorf("%s: the Bcc recipient shows in the message:\n%s", rcpt, m.Data)
		}
	}
	if m, ok := got["erin@example.org"]; !ok {
		t.Error("the message sent over implicit TLS was not relayed")
	} else {
		e.checkRelayed(t, m, "Over implicit TLS", clientText, clientHTML, files, implicitReply)
	}
}

// A test key's message sent with smtplib is captured, not relayed.
func TestPythonSmtplibTestKeyIsCaptured(t *testing.T) {
	e := newEnv(t, nil)
	out := e.python(t, "test_key")["test_key"]
	if out.Error != nil || out.Login != float64(235) {
		t.Fatalf("test key: login %v, error %+v", out.Login, out.Error)
	}
	reply := accepted(t, "test key", out.Data, 1)
	// A live message after it: once that is relayed, so would the test
	// key's have been.
	if _, err := send(e.dial(e.live), "ann@example.com", []string{"after@example.org"}, "From: ann@example.com\r\nSubject: after\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	if got := e.settled(t, 1); got["after@example.org"].Data == nil {
		t.Fatalf("relayed %v, want only the live message", got)
	}
	page, err := e.a.Logs.List(context.Background(), &e.admin.Token, tokend.LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var captured []tokend.MessageLog
	for _, m := range page.Messages {
		if m.Captured() {
			captured = append(captured, m)
		}
	}
	if len(page.Messages) != 2 || len(captured) != 1 || captured[0].Email.Subject != clientSubject ||
		captured[0].Recipient != "bob@example.org" || !strings.Contains(reply, captured[0].ID) {
		t.Fatalf("logs = %+v, want the test key's message captured as %q", page.Messages, reply)
	}
}

// nodemailerVersion is the nodemailer the tests send with, from npm. Its
// 10.x releases need Node.js 20 or newer.
const nodemailerVersion = "10.6.1"

// nodeSend sends with nodemailer, reading its configuration as JSON on
// stdin: ten messages at once through a pool of two STARTTLS connections
// (AUTH PLAIN), one message with an Idempotency-Key twice over implicit TLS
// (AUTH LOGIN), and one with a wrong password. It prints what each send
// answered as one JSON object.
const nodeSend = `
const nodemailer = require("nodemailer");
const cfg = JSON.parse(require("fs").readFileSync(0, "utf8"));
const hostport = (a) => { const i = a.lastIndexOf(":"); return [a.slice(0, i), Number(a.slice(i + 1))]; };
const [host, port] = hostport(cfg.smtp), [shost, sport] = hostport(cfg.smtps);
const common = { tls: { rejectUnauthorized: false }, connectionTimeout: 10000, greetingTimeout: 10000, socketTimeout: 20000 };
const attachment = Buffer.from(cfg.attachment, "base64");
const ok = (info) => ({ response: info.response, accepted: info.accepted, rejected: info.rejected, messageId: info.messageId });
const failed = (e) => ({ error: String(e.message), code: e.code, responseCode: e.responseCode, response: e.response, command: e.command });
const settle = (p) => p.then(ok, failed);
const message = (to, subject, more) => ({
	from: '"Ann Example" <ann@example.com>', to, subject,
	text: cfg.text, html: cfg.html,
	attachments: [{ filename: cfg.filename, content: attachment, contentType: "application/octet-stream" }],
	...more,
});

(async () => {
	const out = {};
	const pool = nodemailer.createTransport({ host, port, secure: false, requireTLS: true, auth: { user: "api", pass: cfg.live },
		pool: true, maxConnections: 2, ...common });
	out.pooled = await Promise.all(Array.from({ length: 10 }, (_, i) => settle(pool.sendMail(message("r" + i + "@example.org", "Pooled " + i + ": " + cfg.subject)))));
	pool.close();

	const implicit = nodemailer.createTransport({ host: shost, port: sport, secure: true, auth: { user: "api", pass: cfg.live }, authMethod: "LOGIN", ...common });
	// A retry after a lost answer sends the same message: same Message-ID,
	// Date and MIME boundaries.
	const once = () => message("idem@example.org", "Once only", { headers: { "Idempotency-Key": "node-order-7" },
		messageId: "<node-order-7@example.com>", date: new Date("2026-12-06T10:00:00Z"), baseBoundary: "node-order-7" });
	out.idempotent = [await settle(implicit.sendMail(once())), await settle(implicit.sendMail(once()))];
	implicit.close();

	const wrong = nodemailer.createTransport({ host, port, secure: false, requireTLS: true, auth: { user: "api", pass: cfg.bad }, ...common });
	out.wrongPassword = await settle(wrong.sendMail(message("bob@example.org", "Wrong password")));
	wrong.close();
	console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
`

type nodeResult struct {
	Response     string
	Accepted     []string
	Rejected     []string
	MessageID    string
	Error        string
	Code         string
	ResponseCode int
	Command      string
}

// Nodemailer: a pool of two STARTTLS connections sending ten messages at
// once, implicit TLS with AUTH LOGIN, a message with an Idempotency-Key sent
// twice and relayed once, and a wrong password refused with 535.
func TestNodemailer(t *testing.T) {
	node, npm := tool(t, "node"), tool(t, "npm")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--engine-strict", "--prefix", dir, "nodemailer@"+nodemailerVersion)
	install.Env = append(os.Environ(), "NPM_CONFIG_UPDATE_NOTIFIER=false")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm install nodemailer@%s (it needs Node.js 20 or newer): %v\n%s", nodemailerVersion, err, out)
	}
	script := filepath.Join(dir, "send.cjs")
	if err := os.WriteFile(script, []byte(nodeSend), 0o644); err != nil {
		t.Fatal(err)
	}

	e := newEnv(t, nil)
	runCtx, cancelRun := context.WithTimeout(t.Context(), time.Minute)
	defer cancelRun()
	cmd := exec.CommandContext(runCtx, node, script)
	cmd.Dir = dir
	cfg := map[string]string{
		"smtp": e.smtp, "smtps": e.smtps, "live": e.live, "bad": "tk_live_" + strings.Repeat("x", 36),
		"subject": clientSubject, "text": clientText, "html": clientHTML,
		"attachment": base64.StdEncoding.EncodeToString(clientAttachment), "filename": clientFile,
	}
	var out struct {
		Pooled        []nodeResult
		Idempotent    []nodeResult
		WrongPassword nodeResult
	}
	runJSON(t, cmd, cfg, &out)

	replies := map[string]string{}
	if len(out.Pooled) != 10 {
		t.Fatalf("pooled sends: %+v", out.Pooled)
	}
	for i, r := range out.Pooled {
		rcpt := fmt.Sprintf("r%d@example.org", i)
		if r.Error != "" || !strings.HasPrefix(r.Response, "250 2.0.0 OK: queued as ") || !slices.Equal(r.Accepted, []string{rcpt}) || len(r.Rejected) != 0 {
			t.Errorf("pooled send %d: %+v", i, r)
		}
		replies[rcpt] = r.Response
	}
	if len(out.Idempotent) != 2 {
		t.Fatalf("idempotent sends: %+v", out.Idempotent)
	}
	first, again := out.Idempotent[0], out.Idempotent[1]
	if first.Error != "" || !strings.HasPrefix(first.Response, "250 2.0.0 OK: queued as ") {
		t.Errorf("first send with an Idempotency-Key: %+v", first)
	}
	if again.Error != "" || !strings.HasPrefix(again.Response, "250 2.0.0 OK: already accepted under this Idempotency-Key as ") {
		t.Errorf("the same message again: %+v, want 250 already accepted", again)
	}
	if id := strings.TrimPrefix(first.Response, "250 2.0.0 OK: queued as "); id == "" || !strings.HasSuffix(again.Response, " as "+id) {
		t.Errorf("the retry answered %q, the first send %q: not the same message", again.Response, first.Response)
	}
	replies["idem@example.org"] = first.Response
	if w := out.WrongPassword; w.Code != "EAUTH" || w.ResponseCode != 535 {
		t.Errorf("wrong password: %+v, want EAUTH 535", w)
	}

	// The pool sent its ten messages over at most two sessions, several
	// in each; without a pool each send is a session of its own.
	auths := promtest.ToFloat64(e.a.Metrics.SMTP.WithLabelValues("submission", "auth", "ok"))
	if auths < 3 || auths > 4 {
		t.Errorf("%v successful AUTHs, want 1 or 2 for the pool and 2 over implicit TLS", auths)
	}
	if n := promtest.ToFloat64(e.a.Metrics.SMTP.WithLabelValues("submission", "message", "accepted")); n != 12 {
		t.Errorf("%v messages accepted, want 12 (10 pooled, the idempotent one twice)", n)
	}
	if n := promtest.ToFloat64(e.a.Metrics.SMTP.WithLabelValues("submission", "auth", "invalid")); n != 1 {
		t.Errorf("%v failed AUTHs, want 1 (the wrong password)", n)
	}

	got := e.settled(t, 11)
	files := map[string][]byte{clientFile: clientAttachment}
	for i := 0; i < 10; i++ {
		rcpt := fmt.Sprintf("r%d@example.org", i)
		m, ok := got[rcpt]
		if !ok {
			t.Errorf("%s got no copy", rcpt)
			continue
		}
		e.checkRelayed(t, m, fmt.Sprintf("Pooled %d: %s", i, clientSubject), clientText, clientHTML, files, replies[rcpt])
	}
	if m, ok := got["idem@example.org"]; !ok {
		t.Error("the message sent with an Idempotency-Key was not relayed")
	} else {
		r := e.checkRelayed(t, m, "Once only", clientText, clientHTML, files, replies["idem@example.org"])
		if r.header.Get("Message-Id") != "<node-order-7@example.com>" || bytes.Contains(m.Data, []byte("Idempotency-Key")) {
			t.Errorf("relayed with Message-ID %q; the Idempotency-Key field must not go on:\n%s", r.header.Get("Message-Id"), m.Data)
		}
	}
}

// Go's net/smtp: STARTTLS, then AUTH PLAIN, which it sends only over TLS
// or to localhost, and a transaction to two recipients.
func TestGoNetSMTP(t *testing.T) {
	e := newEnv(t, nil)
	host, _, err := net.SplitHostPort(e.smtp)
	if err != nil {
		t.Fatal(err)
	}
	dial := func() *smtp.Client {
		t.Helper()
		conn, err := net.DialTimeout("tcp", e.smtp, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		c, err := smtp.NewClient(conn, host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		return c
	}

	// net/smtp sends PLAIN in the clear to a loopback server, which refuses
	// it (net/smtp then ends the session).
	c := dial()
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered")
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before STARTTLS")
	}
	var te *textproto.Error
	if err := c.Auth(smtp.PlainAuth("", "api", e.live, host)); !errors.As(err, &te) || te.Code != 523 || !strings.HasPrefix(te.Msg, "5.7.10 ") {
		t.Errorf("AUTH PLAIN before STARTTLS: %v, want 523 5.7.10", err)
	}

	c = dial()
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true, ServerName: host}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if state, ok := c.TLSConnectionState(); !ok || !state.HandshakeComplete {
		t.Fatal("no TLS after STARTTLS")
	}
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") {
		t.Fatalf("after STARTTLS AUTH is %v %q, want PLAIN offered", ok, mechs)
	}
	if err := c.Auth(smtp.PlainAuth("", "api", e.live, host)); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	if err := c.Mail("ann@example.com"); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	for _, r := range []string{"bob@example.org", "carl@example.org"} {
		if err := c.Rcpt(r); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	msg := "From: Ann <ann@example.com>\r\nTo: bob@example.org, carl@example.org\r\nSubject: =?utf-8?q?From_Go=E2=80=99s_net/smtp?=\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + strings.ReplaceAll(clientText, "\n", "\r\n")
	if _, err := io.WriteString(w, msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	got := e.settled(t, 2)
	for _, rcpt := range []string{"bob@example.org", "carl@example.org"} {
		m, ok := got[rcpt]
		if !ok {
			t.Errorf("%s got no copy", rcpt)
			continue
		}
		r := parseRelayed(t, m.Data)
		if subj, _ := r.header.Subject(); subj != "From Go’s net/smtp" || r.text != clientText {
			t.Errorf("%s: subject %q, text %q", rcpt, subj, r.text)
		}
		e.checkDKIM(t, rcpt, m.Data)
	}
}
