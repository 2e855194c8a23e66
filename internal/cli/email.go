package cli

// What became of sent mail: the email logs and the suppression lists, read
// by the operator as an admin of the account, through the same services
// the API answers from.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/api"
)

// mailRecords are the email logs and suppression lists of one account, and
// the operator who reads them, as an admin of that account.
type mailRecords struct {
	logs         *tokend.EmailLogs
	suppressions *tokend.Suppressions
	*operatorAccount
}

// operatorAccount is the account a command acts on, and the operator acting
// on it as its admin (tokend.OperatorPrincipal: audited as the operator, via
// cli), through the service over the command's database.
type operatorAccount struct {
	svc       *tokend.Service
	operator  *tokend.Token
	accountID int64
}

// accountFlag defines the --account flag of a command that acts on one
// account.
func accountFlag(fs *flag.FlagSet) *int64 {
	return fs.Int64("account", 0, "ID of the account (default: the only one, when the database has one)")
}

// openMailRecords opens the database and the mail records of account, as
// openAccount does.
func openMailRecords(ctx context.Context, cmd, db string, account int64, operator string) (*mailRecords, func() error, error) {
	svc, closeDB, err := openService(ctx, db, apikey.DefaultPrefix, false)
	if err != nil {
		return nil, nil, err
	}
	a, err := openAccount(ctx, svc, cmd, db, account, operator)
	if err != nil {
		closeDB()
		return nil, nil, err
	}
	return &mailRecords{logs: tokend.NewEmailLogs(svc, 0), suppressions: tokend.NewSuppressions(svc), operatorAccount: a}, closeDB, nil
}

// openAccount returns account of svc's database db, or its only account
// when account is 0 (a usage error when it has several), with operator
// acting on it. An unknown account is an error naming the database.
func openAccount(ctx context.Context, svc *tokend.Service, cmd, db string, account int64, operator string) (*operatorAccount, error) {
	accounts, err := svc.ListAllAccounts(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case account == 0 && len(accounts) == 1:
		account = accounts[0].ID
	case account == 0:
		return nil, &UsageError{fmt.Sprintf("%s: --account ID is required: %s holds %d accounts (tokend account list shows them)", cmd, db, len(accounts))}
	case !hasAccount(accounts, account):
		return nil, fmt.Errorf("%s: no account %d in %s", cmd, account, db)
	}
	return &operatorAccount{svc: svc, operator: tokend.OperatorPrincipal(account, operator), accountID: account}, nil
}

func hasAccount(accounts []tokend.Account, id int64) bool {
	for _, a := range accounts {
		if a.ID == id {
			return true
		}
	}
	return false
}

// asFlags renames the fields of a refusal (EINVALID) to the flags that gave
// them, in its messages too, so that the operator reads "--status must be
// ..." rather than the API's parameter names. Other errors pass unchanged.
func asFlags(err error, flags map[string]string) error {
	var e *tokend.Error
	if !errors.As(err, &e) || e.Code != tokend.EINVALID {
		return err
	}
	fields := slices.SortedFunc(maps.Keys(flags), func(a, b string) int { return len(b) - len(a) }) // the longest name matches first
	var pairs []string
	for _, f := range fields {
		pairs = append(pairs, f, flags[f])
	}
	rename := strings.NewReplacer(pairs...)
	var renamed tokend.FieldErrors
	for field, msgs := range e.Fields {
		name := field
		if f, ok := flags[field]; ok {
			name = f
		}
		for _, m := range msgs {
			renamed.Add(name, rename.Replace(m))
		}
	}
	return &tokend.Error{Code: e.Code, Reason: e.Reason, Message: e.Message, Fields: renamed}
}

// logFlags are the API's parameters that email logs' flags give.
var logFlags = map[string]string{
	"filters[to][value]": "--to", "filters[to]": "--to",
	"filters[status][value]": "--status", "filters[status]": "--status",
	"filters[sending_domain_id][value]": "--domain", "filters[sending_domain_id]": "--domain",
	"filters[sent_after]": "--after", "filters[sent_before]": "--before",
}

// emailLogs lists an account's email logs, newest first, following the
// pages until --limit messages.
func emailLogs(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("email logs", stderr)
	db := dbFlag(fs, "SQLite database file, or a postgres:// URL")
	account := accountFlag(fs)
	to := fs.String("to", "", "only the messages to this address (case-insensitive)")
	status := fs.String("status", "", "only the messages of this status: delivered, not_delivered, enqueued, opted_out or captured")
	domain := fs.Int64("domain", 0, "only the messages sent from this sending domain ID")
	var q tokend.LogQuery
	fs.Func("after", "only the messages sent after this time (RFC 3339, such as 2026-03-01T12:00:00Z)", timeFlag(&q.SentAfter))
	fs.Func("before", "only the messages sent before this time (RFC 3339)", timeFlag(&q.SentBefore))
	limit := fs.Int("limit", tokend.LogPageSize, "show at most this many messages")
	asJSON := fs.Bool("json", false, `print {"messages": [...], "total_count", "next_page_cursor"} as JSON, the messages with their events`)
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	switch {
	case *limit <= 0:
		return &UsageError{"email logs: --limit must be a positive number of messages"}
	case *domain < 0:
		return &UsageError{"email logs: --domain must be a sending domain ID"}
	}
	filters := []struct{ field, op, value string }{{"to", "ci_equal", *to}, {"status", "equal", *status}}
	if *domain != 0 {
		filters = append(filters, struct{ field, op, value string }{"sending_domain_id", "equal", strconv.FormatInt(*domain, 10)})
	}
	for _, f := range filters {
		if f.value == "" {
			continue
		}
		lf, err := tokend.NewLogFilter(f.field, f.op, []string{f.value})
		if err != nil {
			return asFlags(err, logFlags)
		}
		q.Filters = append(q.Filters, lf)
	}
	m, closeDB, err := openMailRecords(ctx, "email logs", *db, *account, operatorName(getenv("USER")))
	if err != nil {
		return err
	}
	defer closeDB()
	var shown []tokend.MessageLog
	var page *tokend.LogPage
	for {
		q.Limit = min(*limit-len(shown), tokend.LogPageSize)
		if page, err = m.logs.List(ctx, m.operator, q); err != nil {
			return asFlags(fmt.Errorf("email logs: %w", err), logFlags)
		}
		shown = append(shown, page.Messages...)
		if page.Next == nil || len(shown) >= *limit {
			break
		}
		q.SearchAfter = page.Next.String()
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(api.EmailLogListJSON(shown, page.Total, page.Next))
	}
	if len(shown) == 0 {
		fmt.Fprintf(stdout, "No email logs of account %d match.\n", m.accountID)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tMESSAGE ID\tTO\tSUBJECT\tSTATUS")
	for _, l := range shown {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.CreatedAt.UTC().Format(time.RFC3339), l.ID, l.Recipient, oneLine(l.Email.Subject, 60), tokend.LogStatus(l.State))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	total := strconv.Itoa(page.Total)
	if page.Total >= tokend.LogCountCap {
		total = "at least " + total
	}
	fmt.Fprintf(stdout, "%d of %s messages.", len(shown), total)
	if page.Next != nil {
		fmt.Fprintf(stdout, " Older ones: --limit %d, or narrow with --to, --status, --domain, --after, --before.", *limit+tokend.LogPageSize)
	}
	fmt.Fprintln(stdout)
	return nil
}

// timeFlag parses an RFC 3339 time into t.
func timeFlag(t *time.Time) func(string) error {
	return func(s string) error {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return errors.New("want a date-time such as 2026-03-01T12:00:00Z (RFC 3339)")
		}
		*t = v
		return nil
	}
}

// oneLine is s on one line, clipped to n runes for a table.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// emailLog shows one message's log: where its delivery stands and its events.
func emailLog(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("email log", stderr)
	db := dbFlag(fs, "SQLite database file, or a postgres:// URL")
	account := accountFlag(fs)
	asJSON := fs.Bool("json", false, "print the message and its events as JSON")
	id, err := parseWithArg(fs, args, getenv, stdout, "MESSAGE_ID")
	if err != nil {
		return err
	}
	m, closeDB, err := openMailRecords(ctx, "email log", *db, *account, operatorName(getenv("USER")))
	if err != nil {
		return err
	}
	defer closeDB()
	l, err := m.logs.Message(ctx, m.operator, id)
	if err != nil {
		return explainNotFound(fmt.Errorf("email log: %w", err), "email log: no message %q in account %d of %s", id, m.accountID, *db)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(api.EmailLogJSON(l))
	}
	fmt.Fprintf(stdout, "Message %s to %s: %s", l.ID, l.Recipient, tokend.LogStatus(l.State))
	if string(l.State) != tokend.LogStatus(l.State) {
		fmt.Fprintf(stdout, " (%s)", l.State)
	}
	if l.Attempts > 0 {
		fmt.Fprintf(stdout, " after %d delivery attempts", l.Attempts)
	}
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "From %s, subject %q, sent %s", l.Email.From.Email, l.Email.Subject, l.CreatedAt.UTC().Format(time.RFC3339))
	switch {
	case l.Captured():
		fmt.Fprintf(stdout, ", captured in sandbox %d", l.Email.SandboxID)
	case l.Domain != "":
		fmt.Fprintf(stdout, ", from sending domain %d %s", l.Email.DomainID, l.Domain)
	}
	if l.Email.TokenID != 0 {
		fmt.Fprintf(stdout, ", by token %d", l.Email.TokenID)
	}
	fmt.Fprintln(stdout, ".")
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEVENT\tDETAILS")
	for _, ev := range l.Events {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", ev.At.UTC().Format(time.RFC3339), ev.Type, describeEvent(ev.Details))
	}
	return tw.Flush()
}

// describeEvent says an event's details in a few words: the relay's reply
// and the bounce's category, why a message was rejected, which attempt.
func describeEvent(d tokend.EmailEventDetails) string {
	var parts []string
	if d.Response != "" {
		parts = append(parts, oneLine(d.Response, 120))
	}
	if d.BounceCategory != "" {
		parts = append(parts, "bounce category "+d.BounceCategory)
	}
	if d.RejectReason != "" {
		parts = append(parts, d.RejectReason)
	}
	if d.Attempt > 0 {
		parts = append(parts, fmt.Sprintf("attempt %d", d.Attempt))
	}
	return strings.Join(parts, "; ")
}

// suppressionList lists an account's suppressed addresses, newest first.
func suppressionList(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("suppression list", stderr)
	db := dbFlag(fs, "SQLite database file, or a postgres:// URL")
	account := accountFlag(fs)
	email := fs.String("email", "", "only the suppressions of this address (case-insensitive)")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	m, closeDB, err := openMailRecords(ctx, "suppression list", *db, *account, operatorName(getenv("USER")))
	if err != nil {
		return err
	}
	defer closeDB()
	list, err := m.suppressions.List(ctx, m.operator, *email)
	if err != nil {
		return fmt.Errorf("suppression list: %w", err)
	}
	if *asJSON {
		return writeJSONList(stdout, list, api.SuppressionJSON)
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "No address of account %d is suppressed.\n", m.accountID)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tTYPE\tDOMAIN\tCREATED\tBOUNCED MESSAGE")
	for _, sp := range list {
		source := "-"
		if sp.Source != nil {
			source = sp.Source.MessageID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", sp.ID, sp.Email, sp.Type, suppressionScope(&sp), sp.CreatedAt.UTC().Format(time.RFC3339), source)
	}
	return tw.Flush()
}

// suppressionScope says which mail a suppression holds for: "every domain",
// or its sending domain's ID and name.
func suppressionScope(sp *tokend.Suppression) string {
	if sp.DomainID == 0 {
		return "every domain"
	}
	return fmt.Sprintf("%d %s", sp.DomainID, sp.DomainName)
}

// suppressionFlags are the API's fields that suppression add's arguments give.
var suppressionFlags = map[string]string{"email": "EMAIL", "domain_id": "--domain", "type": "--type"}

// suppressionAdd puts an address on an account's suppression list, as POST
// .../suppressions does: for one sending domain, or for every domain of the
// account. An address already suppressed there is left as it is, and said
// so; the command succeeds either way. Adding is audited under the
// operator's name, via cli.
func suppressionAdd(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("suppression add", stderr)
	db := dbFlag(fs, "SQLite database file, or a postgres:// URL")
	account := accountFlag(fs)
	domain := fs.Int64("domain", 0, "suppress it for mail from this sending domain ID only (default: from every sending domain of the account)")
	typ := fs.String("type", string(tokend.SuppressionManual), `why it is suppressed: "manual import", "unsubscription", "spam complaint" or "hard bounce"`)
	asJSON := fs.Bool("json", false, "print the suppression that holds as JSON")
	email, err := parseWithArg(fs, args, getenv, stdout, "EMAIL")
	if err != nil {
		return err
	}
	m, closeDB, err := openMailRecords(ctx, "suppression add", *db, *account, operatorName(getenv("USER")))
	if err != nil {
		return err
	}
	defer closeDB()
	sp, created, err := m.suppressions.Create(ctx, m.operator, tokend.SuppressionInput{Email: email, DomainID: *domain, Type: tokend.SuppressionType(*typ)})
	if err != nil {
		err = explainNoDomain(fmt.Errorf("suppression add: %w", err), "suppression add: no sending domain %d in account %d of %s", *domain, m.accountID, *db)
		return asFlags(err, suppressionFlags)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(api.SuppressionJSON(sp))
	}
	if !created {
		fmt.Fprintf(stdout, "%s was already suppressed for %s of account %d (%s), as suppression %s; nothing changed.\n",
			sp.Email, scopeWords(sp), m.accountID, sp.Type, sp.ID)
		return nil
	}
	fmt.Fprintf(stdout, "Suppressed %s for %s of account %d (%s), as suppression %s: live mail to it is not relayed.\n",
		sp.Email, scopeWords(sp), m.accountID, sp.Type, sp.ID)
	return nil
}

// scopeWords says suppressionScope in a sentence's words.
func scopeWords(sp *tokend.Suppression) string {
	if sp.DomainID == 0 {
		return "every sending domain"
	}
	return "sending domain " + suppressionScope(sp)
}

// suppressionRemove takes a suppression off an account's list, as DELETE
// .../suppressions/{id} does, so that its address receives live mail again.
// Removing is audited under the operator's name, via cli.
func suppressionRemove(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("suppression remove", stderr)
	db := dbFlag(fs, "SQLite database file, or a postgres:// URL")
	account := accountFlag(fs)
	asJSON := fs.Bool("json", false, "print the suppression removed as JSON")
	id, err := parseWithArg(fs, args, getenv, stdout, "suppression ID")
	if err != nil {
		return err
	}
	m, closeDB, err := openMailRecords(ctx, "suppression remove", *db, *account, operatorName(getenv("USER")))
	if err != nil {
		return err
	}
	defer closeDB()
	sp, err := m.suppressions.Delete(ctx, m.operator, id)
	if err != nil {
		return explainNotFound(fmt.Errorf("suppression remove: %w", err), "suppression remove: no suppression %q in account %d of %s", id, m.accountID, *db)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(api.SuppressionJSON(sp))
	}
	fmt.Fprintf(stdout, "Removed suppression %s of %s for %s of account %d: it receives live mail again.\n", sp.ID, sp.Email, scopeWords(sp), m.accountID)
	return nil
}
