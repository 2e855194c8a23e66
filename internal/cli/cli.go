// Package cli is the tokend command line: serve, account create, account list,
// version and help.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/app"
)

// UsageError is wrong usage of the command line; the process exits with 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// ExitCode maps Run's error to a process exit code: 0, 2 for usage, 1 otherwise.
func ExitCode(err error) int {
	var u *UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &u):
		return 2
	}
	return 1
}

// Env reads an environment variable; os.Getenv in production.
type Env func(string) string

// command is one thing tokend does. The top-level help and each command's
// own help come from this table, so that they cannot disagree.
type command struct {
	name    string // as typed: "account create"
	args    string // what follows the name in its usage line
	summary string
	run     func(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error
	// runIn is run for the commands that read standard input.
	runIn func(ctx context.Context, args []string, getenv Env, stdin io.Reader, stdout, stderr io.Writer) error
}

// commands lists every command in the order the help shows them. It is
// filled in init because help refers to it.
var commands []command

func init() {
	commands = []command{
		{"serve", "[flags]", "run the HTTP API (the first start on an empty database creates account \"Default\" and prints its admin token)", serve, nil},
		{"account create", "--name N [--plan free|pro|enterprise] [--json]", "create an account and print its first admin token once", accountCreate, nil},
		{"account list", "[--json]", "list accounts", accountList, nil},
		{"account set-plan", "ID --plan free|pro|enterprise [--rate-limit N] [--message-limit N]",
			"change an account's plan (enterprise takes custom limits: requests and messages per minute)", accountSetPlan, nil},
		{"account settings", "ID [--expiry-warnings 7,1|none] [--leak-policy revoke|notify] [--json]",
			"show or change an account's expiry warnings and what a reported leak does", accountSettings, nil},
		{"token create", "--account ID --name N [--json]", "mint an account-admin token into an existing account: the recovery when its only admin token is lost", tokenCreate, nil},
		{"token revoke", "ID [--force]", "delete a token; running servers refuse it within a second", tokenRevoke, nil},
		{"token unused", "--account ID [--days N] [--json]", "list the tokens of an account that made no request in N days (default 90)", tokenUnused, nil},
		{"token guard", "ID [--allowed-ips LIST | --any-ip] [--rate-limit N/PERIOD | --no-rate-limit] [--quota N/day|month[/requests|emails] | --no-quota] [--json]",
			"set or remove a token's allowed IPs, rate limit and quota; running servers apply them within a second", tokenGuard, nil},
		{"domain verify", "ID [--dns-resolver HOST:PORT] [--spf MECHANISM] [--json]", "check a sending domain's DNS records now and show what was found", domainVerify, nil},
		{"domain trust", "ID [--undo]", "let a sending domain send whatever its DNS says, for internal use (audited); --undo takes it back", domainTrust, nil},
		{"email logs", "[--to ADDR] [--status S] [--domain ID] [--after RFC3339] [--before RFC3339] [--limit N] [--account ID] [--json]",
			"list an account's email logs, newest first: each message's time, id, recipient, subject and status", emailLogs, nil},
		{"email log", "MESSAGE_ID [--account ID] [--json]", "show one message's log: its delivery state and the timeline of its events", emailLog, nil},
		{"suppression list", "[--email ADDR] [--account ID] [--json]", "list the addresses an account's live mail is not relayed to, newest first", suppressionList, nil},
		{"suppression add", "EMAIL [--domain ID] [--type TYPE] [--account ID] [--json]",
			"keep an account's live mail from an address, for one sending domain or every one (audited)", suppressionAdd, nil},
		{"suppression remove", "ID [--account ID] [--json]", "take a suppression off an account's list: its address receives live mail again (audited)", suppressionRemove, nil},
		{"webhook list", "[--account ID] [--json]", "list an account's webhooks: the endpoints that receive its email events", webhookList, nil},
		{"webhook show", "ID [--account ID] [--json]", "show one webhook: its URL, event types, sending domain, format and state", webhookShow, nil},
		{"webhook create", "--url URL --events delivery,bounce [--domain ID] [--format json|jsonlines] [--inactive] [--account ID] [--json]",
			"add a webhook and print its signing secret (and its Standard Webhooks form) once; URLs follow serve's --webhook-allow-* policy", webhookCreate, nil},
		{"webhook update", "ID [--url URL] [--events LIST] [--format json|jsonlines] [--active true|false] [--account ID] [--json]",
			"change a webhook's URL, event types, format, or state (--active true reactivates one tokend deactivated)", webhookUpdate, nil},
		{"webhook delete", "ID [--account ID] [--json]", "delete a webhook and the deliveries waiting for it", webhookDelete, nil},
		{"webhook deliveries", "ID [--account ID] [--json]", "list a webhook's last 100 deliveries, newest first, with their attempts and the endpoint's last answer", webhookDeliveries, nil},
		{"webhook resend", "ID DELIVERY_ID [--account ID] [--json]", "deliver a delivery's event to its webhook again, as a new delivery", webhookResend, nil},
		{"user create", "--account ID --email E [--name N] [--role admin|viewer] --password-stdin", "create a person who signs in to the dashboard, reading the password from standard input", nil, userCreate},
		{"user list", "[--json]", "list the people who sign in to the dashboard", userList, nil},
		{"user delete", "ID", "delete a user; their sessions end at once", userDelete, nil},
		{"user set-password", "ID --password-stdin", "replace a user's password (read from standard input) and end their sessions", nil, userSetPassword},
		{"user setup-link", "--account ID [--role admin|viewer] [--url URL] [--json]",
			"print a new one-time link (valid 7 days) to set up a dashboard user of an account; the account's earlier links stop working", userSetupLink, nil},
		{"proxy", "--upstream URL --tokend URL [--routes FILE] [--addr ADDR]", "run an authenticating reverse proxy in front of any HTTP API, with the account's service token in TOKEND_TOKEN", proxy, nil},
		{"backup", "OUT", "write a consistent copy of the database to the new file OUT, safe while serve runs", backup, nil},
		{"version", "", "print the version and the VCS revision tokend was built from", printVersion, nil},
		{"help", "[COMMAND]", "show this help, a command's flags with their environment variables, or the commands of a group such as account", help, nil},
	}
}

// lookup finds the command args start with, and returns the arguments after its name.
func lookup(args []string) (*command, []string) {
	for i := range commands {
		c := &commands[i]
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):]
		}
	}
	return nil, nil
}

func usage() string {
	var b strings.Builder
	b.WriteString("tokend: API tokens for your API.\n\nUsage:\n")
	for _, c := range commands {
		writeUsageLine(&b, c)
	}
	b.WriteString("\nFlags that configure tokend can also be set by environment variables:\n" +
		"--db is TOKEND_DB, --reset-grace is TOKEND_RESET_GRACE (a flag wins over its variable).\n" +
		"Run \"tokend help COMMAND\" or \"tokend COMMAND --help\" for a command's flags.\n")
	return b.String()
}

// writeUsageLine writes a command's usage line and, under it, its summary.
func writeUsageLine(b *strings.Builder, c command) {
	line := "tokend " + c.name
	if c.args != "" {
		line += " " + c.args
	}
	fmt.Fprintf(b, "  %s\n      %s\n", line, c.summary)
}

// isGroup reports whether name is a group of commands, such as "account":
// the first word of commands of more than one word.
func isGroup(name string) bool { return subcommands(name) != "" }

// groupUsage is a group's help: the usage line and summary of each of its commands.
func groupUsage(group string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: tokend %s COMMAND [flags]\n\nCommands:\n", group)
	for _, c := range commands {
		if g, _, ok := strings.Cut(c.name, " "); ok && g == group {
			writeUsageLine(&b, c)
		}
	}
	fmt.Fprintf(&b, "\nRun \"tokend help %s COMMAND\" or \"tokend %[1]s COMMAND --help\" for a command's flags.\n", group)
	return b.String()
}

// isHelpFlag reports whether arg asks for help, as the flag package takes it.
func isHelpFlag(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

// Run runs the tokend command line with args (args[0] is the program name).
// It returns a *UsageError for wrong usage; errors are not printed, except usage.
func Run(ctx context.Context, args []string, getenv Env, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage())
		return &UsageError{"no command given"}
	}
	var err error
	switch c, rest := lookup(args[1:]); {
	case c != nil && c.runIn != nil:
		err = c.runIn(ctx, rest, getenv, stdin, stdout, stderr)
	case c != nil:
		err = c.run(ctx, rest, getenv, stdout, stderr)
	case isHelpFlag(args[1]):
		fmt.Fprint(stdout, usage())
	case args[1] == "--version":
		err = printVersion(ctx, nil, getenv, stdout, stderr)
	case isGroup(args[1]) && len(args) == 2:
		err = &UsageError{fmt.Sprintf("%s needs a subcommand: %s (run \"tokend help %[1]s\")", args[1], subcommands(args[1]))}
	case isGroup(args[1]) && len(args) == 3 && isHelpFlag(args[2]):
		fmt.Fprint(stdout, groupUsage(args[1]))
	case isGroup(args[1]):
		err = &UsageError{fmt.Sprintf("unknown command %q (%s takes %s)", args[1]+" "+args[2], args[1], subcommands(args[1]))}
	default:
		fmt.Fprint(stderr, usage())
		err = &UsageError{fmt.Sprintf("unknown command %q", args[1])}
	}
	if c, _ := lookup(args[1:]); c != nil {
		err = refused(c.name, err)
	}
	var u *UsageError
	if errors.As(err, &u) {
		fmt.Fprintln(stderr, "tokend:", u.Msg)
	}
	return err
}

// refused is the one place where input the service refused (an EINVALID
// *tokend.Error, however wrapped) becomes what the operator reads: a usage
// error (exit 2) naming the command, with the refusal in sentences.
func refused(cmd string, err error) error {
	var u *UsageError
	var e *tokend.Error
	if err == nil || errors.As(err, &u) || !errors.As(err, &e) || e.Code != tokend.EINVALID {
		return err
	}
	return &UsageError{cmd + ": " + e.Sentences()}
}

// subcommands lists the subcommands of a command group, such as "account".
func subcommands(group string) string {
	var subs []string
	for _, c := range commands {
		if g, sub, ok := strings.Cut(c.name, " "); ok && g == group {
			subs = append(subs, sub)
		}
	}
	return strings.Join(subs, ", ")
}

// help prints the usage, a group's commands, or one command's usage line
// and flags.
func help(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 0:
		fmt.Fprint(stdout, usage())
		return nil
	case isHelpFlag(args[0]):
		return parse(newFlagSet("help", stderr), args, getenv, stdout) // help's own help
	case len(args) == 1 && isGroup(args[0]):
		fmt.Fprint(stdout, groupUsage(args[0]))
		return nil
	}
	c, rest := lookup(args)
	if c == nil || len(rest) > 0 {
		return &UsageError{fmt.Sprintf("help: unknown command %q", strings.Join(args, " "))}
	}
	noEnv := func(string) string { return "" }
	var err error
	if c.runIn != nil {
		err = c.runIn(ctx, []string{"--help"}, noEnv, nil, stdout, stderr)
	} else {
		err = c.run(ctx, []string{"--help"}, noEnv, stdout, stderr)
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// newFlagSet returns a flag set that reports a bad flag in one line with a
// hint; -h prints every flag.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors once, through Run, and prints -h itself
	fs.Usage = func() {}
	return fs
}

// dbFlag defines the --db flag of a command that opens the database, with
// serve's default.
func dbFlag(fs *flag.FlagSet, usage string) *string {
	return fs.String("db", app.Default().DB, usage)
}

// perInvocation are flags that say what to do rather than how tokend is set
// up: they are never read from the environment, so that a stray TOKEND_NAME
// cannot rename what an operator creates.
var perInvocation = map[string]bool{"name": true, "plan": true, "json": true, "rate-limit": true, "message-limit": true, "account": true, "force": true, "undo": true,
	"email": true, "role": true, "password-stdin": true, "to": true, "status": true, "domain": true, "after": true, "before": true, "limit": true,
	"allowed-ips": true, "any-ip": true, "days": true, "expiry-warnings": true, "leak-policy": true, "quota": true, "no-rate-limit": true, "no-quota": true,
	"type": true, "events": true, "format": true, "inactive": true, "active": true}

// perInvocationIn are flags that say what to do in some commands only, and
// are never read from the environment there: --url of user setup-link is
// where tokend is reached (TOKEND_URL), but a webhook's --url is its
// endpoint, which TOKEND_URL must not fill in.
var perInvocationIn = map[string][]string{"webhook create": {"url"}, "webhook update": {"url"}}

// envVar is the environment variable a flag of fs is read from, or "" for none.
func envVar(fs *flag.FlagSet, f *flag.Flag) string {
	if perInvocation[f.Name] || slices.Contains(perInvocationIn[fs.Name()], f.Name) {
		return ""
	}
	return "TOKEND_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
}

// parse applies TOKEND_* environment variables as defaults, then the command
// line. Bad values and stray arguments are usage errors; -h and --help print
// the command's usage and flags to stdout and return flag.ErrHelp.
func parse(fs *flag.FlagSet, args []string, getenv Env, stdout io.Writer) error {
	_, err := parsePositional(fs, args, getenv, stdout)
	return err
}

// parseWithArg is parse for commands that take one positional argument (an
// ID or a file), accepted before or after the flags. It returns the argument.
func parseWithArg(fs *flag.FlagSet, args []string, getenv Env, stdout io.Writer, what string) (string, error) {
	got, err := parsePositional(fs, args, getenv, stdout, what)
	if err != nil {
		return "", err
	}
	return got[0], nil
}

// parsePositional is parse for commands that take one positional argument
// for each of whats, which names it when it is missing ("token ID"). They
// come in that order, before, after or between the flags; one that starts
// with "-" only after "--". It returns the arguments.
func parsePositional(fs *flag.FlagSet, args []string, getenv Env, stdout io.Writer, whats ...string) ([]string, error) {
	if err := applyEnv(fs, getenv); err != nil {
		return nil, err
	}
	var got []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printHelp(fs, stdout)
				return nil, err
			}
			return nil, &UsageError{fmt.Sprintf("%s: %v (run \"tokend help %s\" to list its flags)", fs.Name(), err, fs.Name())}
		}
		left := fs.Args()
		if len(left) == 0 {
			break
		}
		if len(left) < len(args) && args[len(args)-len(left)-1] == "--" { // after "--", every argument is positional
			got = append(got, left...)
			break
		}
		got, args = append(got, left[0]), left[1:] // and the flags after it
	}
	switch {
	case len(got) > len(whats):
		return nil, &UsageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), got[len(whats)])}
	case len(got) < len(whats):
		return nil, &UsageError{fmt.Sprintf("%s: missing %s (run \"tokend help %s\")", fs.Name(), whats[len(got)], fs.Name())}
	}
	return got, nil
}

// applyEnv sets fs's flags from their TOKEND_* variables, the defaults the
// command line overrides.
func applyEnv(fs *flag.FlagSet, getenv Env) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		key := envVar(fs, f)
		if key == "" || envErr != nil {
			return
		}
		if v := getenv(key); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = &UsageError{fmt.Sprintf("%s=%q: %v", key, v, err)}
			}
		}
	})
	return envErr
}

// parseWithID is parseWithArg for the commands whose argument is an ID, a
// positive integer: what names it when it is missing ("token ID"), aWhat
// when the argument is not one ("a token ID").
func parseWithID(fs *flag.FlagSet, args []string, getenv Env, stdout io.Writer, what, aWhat string) (int64, error) {
	arg, err := parseWithArg(fs, args, getenv, stdout, what)
	if err != nil {
		return 0, err
	}
	return parseID(fs.Name(), arg, aWhat)
}

// parseID reads arg, a positional argument of cmd, as an ID: a positive
// integer; aWhat names it when it is not one ("a token ID").
func parseID(cmd, arg, aWhat string) (int64, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return 0, &UsageError{fmt.Sprintf("%s: %q is not %s", cmd, arg, aWhat)}
	}
	return id, nil
}

// printHelp prints a command's usage line, summary and flags, each with the
// environment variable it is also read from.
func printHelp(fs *flag.FlagSet, w io.Writer) {
	line := "tokend " + fs.Name()
	summary := ""
	for _, c := range commands {
		if c.name == fs.Name() {
			if c.args != "" {
				line += " " + c.args
			}
			summary = c.summary
		}
	}
	fmt.Fprintf(w, "Usage: %s\n\n", line)
	if summary != "" {
		fmt.Fprintf(w, "%s%s.\n\n", strings.ToUpper(summary[:1]), summary[1:])
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintln(w, "Flags (a flag wins over its environment variable):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		kind, text := flag.UnquoteUsage(f)
		name := "--" + f.Name
		if kind != "" {
			name += " " + strings.ToUpper(kind)
		}
		env := envVar(fs, f)
		if env == "" {
			env = "-"
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			text += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, env, text)
	})
	tw.Flush()
}

// printVersion prints the module version and the VCS revision, time and
// state the binary was built from, as far as the build recorded them.
func printVersion(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr)
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "tokend", version())
	return nil
}

// version is "<module version> (revision <hash>[, modified], <commit time>)",
// or just the module version when the build recorded no VCS information.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build information)"
	}
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	v := bi.Main.Version
	if rev == "" {
		return v + " (no VCS revision recorded: built outside a git checkout or with -buildvcs=false)"
	}
	v += " (revision " + rev
	if modified {
		v += ", modified"
	}
	if at != "" {
		v += ", " + at
	}
	return v + ")"
}

// nonNegative rejects negative durations from flags.
func nonNegative(name string, d time.Duration) error {
	if d < 0 {
		return &UsageError{fmt.Sprintf("--%s must not be negative", name)}
	}
	return nil
}
