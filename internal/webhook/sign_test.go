package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/webhook"
)

// pySign computes, with Python's hmac, hashlib and base64, the Mailtrap and
// Standard Webhooks signatures of a delivery, and the whsec_ secret.
const pySign = `
import base64, hashlib, hmac, os, sys
secret, msg_id, ts = os.environb[b"SECRET"], os.environb[b"ID"], os.environb[b"TS"]
body = sys.stdin.buffer.read()
print(hmac.new(secret, body, hashlib.sha256).hexdigest())
print("v1," + base64.b64encode(hmac.new(secret, msg_id + b"." + ts + b"." + body, hashlib.sha256).digest()).decode())
print("whsec_" + base64.b64encode(secret).decode())
`

func TestSignKnownAnswers(t *testing.T) {
	python := tool(t, "python3")
	tests := []struct {
		name        string
		secret, id  string
		at          time.Time
		contentType string
		body        []byte
	}{
		{"JSON event", "3b7e1c0f5a9d2e4b6c8a0f1e3d5b7a9c2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a0b", "msg_2Lh9KXmyMtmXZVfGN3JZP2kfqjs",
			time.Unix(1700000000, 0), "application/json", []byte(`{"events":[{"event":"delivery","email":"zoë@example.com"}]}` + "\n")},
		{"empty body, no content type", "s3cret", "1", time.Unix(1, 0), "", nil},
		{"binary body, non-ASCII secret", "sécret ü", "delivery 42", time.Unix(4102444800, 999), "application/jsonl", []byte{0, 0xff, '\n', '.', 0x80}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := strconv.FormatInt(tt.at.Unix(), 10)
			cmd := exec.CommandContext(t.Context(), python, "-c", pySign)
			cmd.Env = append(os.Environ(), "SECRET="+tt.secret, "ID="+tt.id, "TS="+ts)
			cmd.Stdin = bytes.NewReader(tt.body)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("python3: %v", err)
			}
			want := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(want) != 3 {
				t.Fatalf("python3 printed %q", out)
			}
			h := webhook.Sign(tt.secret, tt.id, tt.at, tt.contentType, tt.body)
			signing := []struct{ header, want string }{
				{"Mailtrap-Signature", want[0]},
				{"webhook-signature", want[1]},
				{"webhook-id", tt.id},
				{"webhook-timestamp", ts},
				{"Content-Type", tt.contentType},
				{"User-Agent", "tokend-webhooks/1"},
			}
			for _, c := range signing {
				got := h.Values(c.header)
				if c.want == "" && len(got) != 0 || c.want != "" && (len(got) != 1 || got[0] != c.want) {
					t.Errorf("%s = %q, want %q", c.header, got, c.want)
				}
			}
			n := len(signing)
			if tt.contentType == "" {
				n-- // no Content-Type
			}
			if len(h) != n {
				t.Errorf("headers %v, want exactly the signing ones", h)
			}
			if got := webhook.StandardSecret(tt.secret); got != want[2] {
				t.Errorf("StandardSecret = %q, want %q", got, want[2])
			}
		})
	}
}

func TestNewSecret(t *testing.T) {
	a, b := webhook.NewSecret(), webhook.NewSecret()
	for _, s := range []string{a, b} {
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(s) {
			t.Errorf("NewSecret() = %q, want 64 lowercase hex characters", s)
		}
	}
	if a == b {
		t.Errorf("NewSecret() returned %q twice", a)
	}
}

// standardWebhooksVersion is the npm package the Standard Webhooks signature
// is verified with.
const standardWebhooksVersion = "1.3.0"

// nodeVerify verifies a delivery as receivers written in Node do: with
// Standard Webhooks' own library, and with the algorithm of the Mailtrap
// Node SDK's verifyWebhookSignature (a hex HMAC-SHA256 of the raw body,
// keyed with the secret). It prints what each says.
const nodeVerify = `
const crypto = require("crypto");
const fs = require("fs");
const { Webhook } = require("standardwebhooks");
const [headersFile, bodyFile] = process.argv.slice(2);
const headers = JSON.parse(fs.readFileSync(headersFile, "utf8"));
const body = fs.readFileSync(bodyFile);
const out = {};
try {
	new Webhook(process.env.STANDARD_SECRET).verify(body, headers);
	out.standard = "ok";
} catch (e) {
	out.standard = String(e.message);
}
const expected = crypto.createHmac("sha256", process.env.SECRET).update(body).digest("hex");
const got = headers["mailtrap-signature"] || "";
out.mailtrap = got.length === expected.length && crypto.timingSafeEqual(Buffer.from(got), Buffer.from(expected)) ? "ok" : "mismatch";
console.log(JSON.stringify(out));
`

// Deliveries, as an endpoint receives them, verify in Node with the
// standardwebhooks package and with Mailtrap's algorithm; tampered ones do
// not.
func TestNodeVerifiers(t *testing.T) {
	node, npm := tool(t, "node"), tool(t, "npm")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--prefix", dir, "standardwebhooks@"+standardWebhooksVersion)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm install standardwebhooks: %v\n%s", err, out)
	}
	script := filepath.Join(dir, "verify.js")
	if err := os.WriteFile(script, []byte(nodeVerify), 0o644); err != nil {
		t.Fatal(err)
	}

	srv, got := receiver(t)
	client := webhook.Policy{AllowHTTP: true}.Client(10 * time.Second)
	body := []byte(`{"events":[{"event":"open","email":"zoë@example.com","ip":"203.0.113.7"}]}`)
	tests := []struct {
		name     string
		secret   string
		tamper   func(r *received)
		standard string // what the Standard Webhooks verifier says
		mailtrap string
	}{
		{"as delivered", webhook.NewSecret(), nil, "ok", "ok"},
		{"non-ASCII secret", "clé secrète", nil, "ok", "ok"},
		{"tampered body", webhook.NewSecret(), func(r *received) { r.body = bytes.Replace(r.body, []byte("open"), []byte("click"), 1) },
			"No matching signature found", "mismatch"},
		{"replayed under another ID", webhook.NewSecret(), func(r *received) { r.header.Set("webhook-id", "msg_other") },
			"No matching signature found", "ok"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := webhook.Deliver(t.Context(), client, srv.URL, tt.secret, "msg_"+strconv.Itoa(i), time.Now(), "application/json", body); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			r := <-got
			if tt.tamper != nil {
				tt.tamper(&r)
			}
			headers := map[string]string{}
			for k := range r.header {
				headers[strings.ToLower(k)] = r.header.Get(k)
			}
			hj, err := json.Marshal(headers)
			if err != nil {
				t.Fatal(err)
			}
			hf, bf := filepath.Join(t.TempDir(), "headers.json"), filepath.Join(t.TempDir(), "body")
			if err := os.WriteFile(hf, hj, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(bf, r.body, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(t.Context(), node, script, hf, bf)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "SECRET="+tt.secret, "STANDARD_SECRET="+webhook.StandardSecret(tt.secret))
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("node: %v", err)
			}
			var says struct{ Standard, Mailtrap string }
			if err := json.Unmarshal(out, &says); err != nil {
				t.Fatalf("node printed %q: %v", out, err)
			}
			if says.Standard != tt.standard || says.Mailtrap != tt.mailtrap {
				t.Errorf("Node says standard %q, mailtrap %q; want %q, %q", says.Standard, says.Mailtrap, tt.standard, tt.mailtrap)
			}
		})
	}
}
