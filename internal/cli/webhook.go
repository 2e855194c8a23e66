package cli

// The endpoints that receive an account's email events, managed by the
// operator as an admin of the account, through the same service (and rules)
// the API's webhooks routes use.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/api"
	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/webhook"
)

// webhookCommand is what the webhook commands share: the database, the
// account and --json, and for the commands that need them, the operator's
// URL policy and the secrets key.
type webhookCommand struct {
	fs      *flag.FlagSet
	db      *string
	account *int64
	asJSON  *bool
	// allowHTTP and allowPrivate are the URL policy's flags, on the
	// commands that set URLs (nil elsewhere: they check none).
	allowHTTP, allowPrivate *bool
	// keyFile is --secrets-key-file, on the command that seals signing
	// secrets (nil elsewhere: they open no key).
	keyFile *string
}

// newWebhookCommand defines the flags every webhook command has; jsonUsage
// says what --json prints.
func newWebhookCommand(name string, stderr io.Writer, jsonUsage string) *webhookCommand {
	fs := newFlagSet(name, stderr)
	return &webhookCommand{fs: fs, db: dbFlag(fs, "SQLite database file, or a postgres:// URL"), account: accountFlag(fs),
		asJSON: fs.Bool("json", false, jsonUsage)}
}

// policyFlags defines the flags of the operator's URL policy, which are
// serve's and read the same variables (TOKEND_WEBHOOK_ALLOW_HTTP,
// TOKEND_WEBHOOK_ALLOW_PRIVATE), so that the command accepts the URLs serve
// accepts and refuses the others.
func (c *webhookCommand) policyFlags() {
	def := app.Default()
	c.allowHTTP = c.fs.Bool("webhook-allow-http", def.WebhookAllowHTTP, "accept http:// URLs of loopback hosts, as serve --webhook-allow-http does: give what serve is given")
	c.allowPrivate = c.fs.Bool("webhook-allow-private", def.WebhookAllowPrivate, "accept URLs of addresses that are not public, as serve --webhook-allow-private does: give what serve is given")
}

// keyFlag defines --secrets-key-file, serve's flag, for the command that
// seals signing secrets with the key serve opens them with.
func (c *webhookCommand) keyFlag() {
	c.keyFile = c.fs.String("secrets-key-file", "", "file with the key that seals secrets, as serve's --secrets-key-file (default: the database path + .key)")
}

// webhookRecords are the webhooks of one account, and the operator who
// manages them as an admin of that account.
type webhookRecords struct {
	hooks *tokend.Webhooks
	*operatorAccount
}

// open opens the database and the webhooks of the command's account (as
// openAccount picks it). URLs are checked under the policy the flags give
// (the strict one where the command has none). With keyFlag, the service
// seals signing secrets with the secrets key serve uses, creating it as
// serve does when the database holds no secrets yet; a key that is not the
// database's is refused. The webhooks deliver nothing: running servers send
// what the command queues, at their next look at the outbox.
func (c *webhookCommand) open(ctx context.Context, stderr io.Writer, operator string) (*webhookRecords, func() error, error) {
	var svc *tokend.Service
	var closeDB func() error
	var err error
	if c.keyFile != nil {
		svc, closeDB, err = openSealing(ctx, *c.db, *c.keyFile, stderr)
	} else {
		svc, closeDB, err = openService(ctx, *c.db, apikey.DefaultPrefix, false)
	}
	if err != nil {
		return nil, nil, err
	}
	a, err := openAccount(ctx, svc, c.fs.Name(), *c.db, *c.account, operator)
	if err != nil {
		closeDB()
		return nil, nil, err
	}
	var policy webhook.Policy
	if c.allowHTTP != nil {
		policy = webhook.Policy{AllowHTTP: *c.allowHTTP, AllowPrivate: *c.allowPrivate}
	}
	return &webhookRecords{hooks: tokend.NewWebhooks(svc, tokend.WebhookOptions{CheckURL: policy.ValidateURL}), operatorAccount: a}, closeDB, nil
}

// openSealing opens the existing database db with the secrets key serve
// uses with it (keyFile, or db + ".key"), as serve loads it.
func openSealing(ctx context.Context, db, keyFile string, stderr io.Writer) (*tokend.Service, func() error, error) {
	format, err := apikey.NewFormat(apikey.DefaultPrefix)
	if err != nil {
		return nil, nil, err
	}
	store, err := app.OpenStore(ctx, db, false)
	if err != nil {
		return nil, nil, err
	}
	logger, closeLogs := newLogger(stderr, slog.LevelInfo) // says when it creates the key file
	keyring, err := app.LoadKeyring(ctx, db, keyFile, store, logger)
	closeLogs()
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	svc := tokend.NewService(store, tokend.Options{Format: format, Keyring: keyring})
	if _, err := svc.CheckSecretsKey(ctx); err != nil {
		store.Close()
		if errors.Is(err, tokend.ErrSecretsKeyMismatch) {
			return nil, nil, fmt.Errorf("secrets key file %s: %w; give --secrets-key-file the key file serve uses", app.SecretsKeyPath(db, keyFile), err)
		}
		return nil, nil, err
	}
	return svc, store.Close, nil
}

// webhookFlags are the API's fields that the webhook commands' flags give.
var webhookFlags = map[string]string{"url": "--url", "event_types": "--events", "payload_format": "--format", "domain_id": "--domain"}

// webhookError is a webhook command's error: the webhook it did not find,
// or err after the command's name, with a refusal's fields named as flags.
func webhookError(cmd string, id int64, m *webhookRecords, db string, err error) error {
	err = explainNotFound(fmt.Errorf("%s: %w", cmd, err), "%s: no webhook %d in account %d of %s", cmd, id, m.accountID, db)
	return asFlags(err, webhookFlags)
}

// eventList reads --events: event types separated by commas (or spaces).
func eventList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

// webhookList lists an account's webhooks, oldest first.
func webhookList(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	c := newWebhookCommand("webhook list", stderr, "print a JSON array, as the API's data")
	if err := parse(c.fs, args, getenv, stdout); err != nil {
		return err
	}
	m, closeDB, err := c.open(ctx, stderr, operatorName(getenv("USER")))
	if err != nil {
		return err
	}
	defer closeDB()
	list, err := m.hooks.List(ctx, m.operator)
	if err != nil {
		return fmt.Errorf("webhook list: %w", err)
	}
	if *c.asJSON {
		return writeJSONList(stdout, list, api.WebhookJSON)
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "Account %d has no webhooks.\n", m.accountID)
		return nil
	}
	domains, err := m.domainNames(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tURL\tEVENTS\tDOMAIN\tFORMAT\tSTATE")
	for _, h := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.URL, strings.Join(h.EventTypes, ","), domains.of(h.DomainID), h.PayloadFormat, oneLine(webhookState(&h), 80))
	}
	return tw.Flush()
}

// domainNames are the names of the account's sending domains, by ID.
type domainNames map[int64]string

func (m *webhookRecords) domainNames(ctx context.Context) (domainNames, error) {
	list, err := m.svc.ListResources(ctx, m.operator, tokend.ResourceDomain)
	if err != nil {
		return nil, err
	}
	out := domainNames{}
	for _, d := range list {
		out[d.ID] = d.Name
	}
	return out, nil
}

// of says which sending domains' mail a webhook gets: "every domain", or
// its domain's ID and name.
func (n domainNames) of(id int64) string {
	if id == 0 {
		return "every domain"
	}
	return strings.TrimSpace(fmt.Sprintf("%d %s", id, n[id]))
}

// webhookState says whether a webhook gets deliveries: "active" (and since
// when they fail, if they do), "inactive", or why tokend deactivated it.
func webhookState(h *tokend.Webhook) string {
	switch {
	case h.Active && h.FailingSince != nil:
		return "active, failing since " + h.FailingSince.UTC().Format(time.RFC3339)
	case h.Active:
		return "active"
	case h.DeactivatedAt != nil:
		return fmt.Sprintf("deactivated by tokend at %s: %s", h.DeactivatedAt.UTC().Format(time.RFC3339), h.DeactivatedReason)
	}
	return "inactive"
}

// printWebhook prints a webhook, as JSON or as lines of text after title.
func (m *webhookRecords) printWebhook(ctx context.Context, w io.Writer, h *tokend.Webhook, asJSON bool, title string) error {
	if asJSON {
		return json.NewEncoder(w).Encode(api.WebhookJSON(h))
	}
	domains, err := m.domainNames(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "URL:\t%s\n", h.URL)
	fmt.Fprintf(tw, "Events:\t%s\n", strings.Join(h.EventTypes, ", "))
	fmt.Fprintf(tw, "Sending domain:\t%s\n", domains.of(h.DomainID))
	fmt.Fprintf(tw, "Format:\t%s\n", h.PayloadFormat)
	fmt.Fprintf(tw, "State:\t%s\n", webhookState(h))
	fmt.Fprintf(tw, "Created:\t%s\n", h.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "Updated:\t%s\n", h.UpdatedAt.UTC().Format(time.RFC3339))
	return tw.Flush()
}

// webhookShow shows one webhook.
func webhookShow(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	c := newWebhookCommand("webhook show", stderr, "print the webhook as JSON, as the API's data")
	id, err := parseWithID(c.fs, args, getenv, stdout, "webhook ID", "a webhook ID")
	if err != nil {
		return err
	}
	m, closeDB, err := c.open(ctx, stderr, operatorName(getenv("USER")))
	if err != nil {
		return err
	}
	defer closeDB()
	h, err := m.hooks.Get(ctx, m.operator, id)
	if err != nil {
		return webhookError("webhook show", id, m, *c.db, err)
	}
	return m.printWebhook(ctx, stdout, h, *c.asJSON, fmt.Sprintf("Webhook %d of account %d:", h.ID, m.accountID))
}

// webhookCreate adds a webhook, as POST .../webhooks does, and prints its
// signing secret, in Mailtrap's form and in the Standard Webhooks form, this
// once: tokend keeps it sealed with serve's secrets key, so that running
// servers sign its deliveries, and never shows it again.
func webhookCreate(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	c := newWebhookCommand("webhook create", stderr, "print the webhook as JSON, as the API's data, with signing_secret and standard_webhooks_secret")
	url := c.fs.String("url", "", "the endpoint's https:// URL (required)")
	events := c.fs.String("events", "", "the event types it gets, separated by commas: delivery, soft_bounce, bounce, reject (required)")
	domain := c.fs.Int64("domain", 0, "only the events of mail from this sending domain ID (default: of every sending domain)")
	format := c.fs.String("format", "json", `payload format: json ({"events": [...]}) or jsonlines (one event a line)`)
	inactive := c.fs.Bool("inactive", false, "create it inactive: it gets no deliveries until it is activated (webhook update --active true)")
	c.policyFlags()
	c.keyFlag()
	if err := parse(c.fs, args, getenv, stdout); err != nil {
		return err
	}
	m, closeDB, err := c.open(ctx, stderr, operatorName(getenv("USER")))
	if err != nil {
		return err
	}
	defer closeDB()
	active := !*inactive
	h, err := m.hooks.Create(ctx, m.operator, tokend.WebhookInput{URL: *url, EventTypes: eventList(*events), DomainID: *domain,
		PayloadFormat: *format, Active: &active})
	if err != nil {
		err = explainNoDomain(fmt.Errorf("webhook create: %w", err), "webhook create: no sending domain %d in account %d of %s", *domain, m.accountID, *c.db)
		return asFlags(err, webhookFlags)
	}
	standard := webhook.StandardSecret(h.Secret)
	if *c.asJSON {
		return json.NewEncoder(stdout).Encode(api.CreatedWebhookJSON(h))
	}
	if err := m.printWebhook(ctx, stdout, &h.Webhook, false, fmt.Sprintf("Created webhook %d of account %d:", h.ID, m.accountID)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nIts signing secret, in Mailtrap's form and in the Standard Webhooks form (one key):\n\n"+
		"    signing_secret:           %s\n    standard_webhooks_secret: %s\n\n"+
		"Store it now: this is the only time it is shown. tokend keeps it sealed and will not show it again.\n", h.Secret, standard)
	return nil
}

// webhookUpdate changes a webhook's URL, event types, format or state, as
// PATCH .../webhooks/{id} does; what no flag gives stays as it is.
// Activating a webhook tokend deactivated clears its failure record, and
// running servers send the deliveries still waiting.
func webhookUpdate(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	c := newWebhookCommand("webhook update", stderr, "print the webhook as JSON, as the API's data")
	url := c.fs.String("url", "", "a new https:// URL")
	events := c.fs.String("events", "", "the event types it gets, separated by commas (in place of the ones it has)")
	format := c.fs.String("format", "", "payload format: json or jsonlines")
	var active *bool
	c.fs.Func("active", "true to activate it (clearing tokend's deactivation), false to stop its deliveries", func(s string) error {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("want true or false")
		}
		active = &b
		return nil
	})
	c.policyFlags()
	id, err := parseWithID(c.fs, args, getenv, stdout, "webhook ID", "a webhook ID")
	if err != nil {
		return err
	}
	u := tokend.WebhookUpdate{Active: active}
	c.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "url":
			u.URL = url
		case "events":
			list := eventList(*events)
			u.EventTypes = &list
		case "format":
			u.PayloadFormat = format
		}
	})
	if u == (tokend.WebhookUpdate{}) {
		return &UsageError{"webhook update: nothing to change: give --url, --events, --format or --active"}
	}
	m, closeDB, err := c.open(ctx, stderr, operatorName(getenv("USER")))
	if err != nil {
		return err
	}
	defer closeDB()
	h, err := m.hooks.Update(ctx, m.operator, id, u)
	if err != nil {
		return webhookError("webhook update", id, m, *c.db, err)
	}
	return m.printWebhook(ctx, stdout, h, *c.asJSON, fmt.Sprintf("Updated webhook %d of account %d:", h.ID, m.accountID))
}

// webhookDelete deletes a webhook, and the deliveries waiting for it.
func webhookDelete(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	c := newWebhookCommand("webhook delete", stderr, "print the webhook deleted as JSON, as the API's data")
	id, err := parseWithID(c.fs, args, getenv, stdout, "webhook ID", "a webhook ID")
	if err != nil {
		return err
	}
	m, closeDB, err := c.open(ctx, stderr, operatorName(getenv("USER")))
	if err != nil {
		return err
	}
	defer closeDB()
	h, err := m.hooks.Delete(ctx, m.operator, id)
	if err != nil {
		return webhookError("webhook delete", id, m, *c.db, err)
	}
	if *c.asJSON {
		return json.NewEncoder(stdout).Encode(api.WebhookJSON(h))
	}
	fmt.Fprintf(stdout, "Deleted webhook %d (%s) of account %d, and the deliveries waiting for it.\n", h.ID, h.URL, m.accountID)
	return nil
}

// webhookDeliveries lists a webhook's last deliveries, newest first.
func webhookDeliveries(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	c := newWebhookCommand("webhook deliveries", stderr, "print a JSON array, as the API's data")
	id, err := parseWithID(c.fs, args, getenv, stdout, "webhook ID", "a webhook ID")
	if err != nil {
		return err
	}
	m, closeDB, err := c.open(ctx, stderr, operatorName(getenv("USER")))
	if err != nil {
		return err
	}
	defer closeDB()
	list, err := m.hooks.Deliveries(ctx, m.operator, id)
	if err != nil {
		return webhookError("webhook deliveries", id, m, *c.db, err)
	}
	if *c.asJSON {
		return writeJSONList(stdout, list, api.WebhookDeliveryJSON)
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "No deliveries to webhook %d yet.\n", id)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tEVENT\tMESSAGE ID\tSTATE\tATTEMPTS\tLAST STATUS\tLAST ERROR")
	for _, d := range list {
		status := "-"
		if d.LastStatus != 0 {
			status = strconv.Itoa(d.LastStatus)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.CreatedAt.UTC().Format(time.RFC3339), d.EventType, d.MessageID, d.State,
			d.Attempts, status, oneLine(d.LastError, 60))
	}
	return tw.Flush()
}

// webhookResend delivers an event to a webhook again, as a new delivery,
// whatever became of the one it is given.
func webhookResend(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	c := newWebhookCommand("webhook resend", stderr, "print the new delivery as JSON, as the API's data")
	ids, err := parsePositional(c.fs, args, getenv, stdout, "webhook ID", "DELIVERY_ID")
	if err != nil {
		return err
	}
	id, err := parseID(c.fs.Name(), ids[0], "a webhook ID")
	if err != nil {
		return err
	}
	deliveryID, err := parseID(c.fs.Name(), ids[1], "a delivery ID")
	if err != nil {
		return err
	}
	m, closeDB, err := c.open(ctx, stderr, operatorName(getenv("USER")))
	if err != nil {
		return err
	}
	defer closeDB()
	if _, err := m.hooks.Get(ctx, m.operator, id); err != nil {
		return webhookError("webhook resend", id, m, *c.db, err)
	}
	d, err := m.hooks.Resend(ctx, m.operator, id, deliveryID)
	if err != nil {
		return explainNotFound(fmt.Errorf("webhook resend: %w", err), "webhook resend: webhook %d has no delivery %d", id, deliveryID)
	}
	if *c.asJSON {
		return json.NewEncoder(stdout).Encode(api.WebhookDeliveryJSON(d))
	}
	fmt.Fprintf(stdout, "Queued delivery %d: the %s event of message %s, to webhook %d again. Running servers send it within seconds.\n",
		d.ID, d.EventType, d.MessageID, id)
	return nil
}
