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
	"strings"
	"time"
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

const usage = `tokend: API tokens for your API.

Usage:
  tokend serve [flags]             run the HTTP API (first start creates account "Default" and prints its admin token)
  tokend account create --name N   create an account and print its first admin token
  tokend account list              list accounts
  tokend account set-plan ID --plan P [--rate-limit N]
                                   change an account's plan (enterprise takes a custom limit)
  tokend version                   print the version
  tokend help                      show this help

Every flag can also be set by an environment variable: --reset-grace is TOKEND_RESET_GRACE.
Run "tokend <command> -h" for a command's flags.
`

// Run runs the tokend command line with args (args[0] is the program name).
// It returns a *UsageError for wrong usage; errors are not printed, except usage.
func Run(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return &UsageError{"no command given"}
	}
	cmd, rest := args[1], args[2:]
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, rest, getenv, stdout, stderr)
	case "account":
		err = account(ctx, rest, getenv, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "tokend", version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprint(stderr, usage)
		return &UsageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	var u *UsageError
	if errors.As(err, &u) {
		fmt.Fprintln(stderr, "tokend:", u.Msg)
	}
	return err
}

func account(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &UsageError{"account needs a subcommand: create, list or set-plan"}
	}
	switch args[0] {
	case "create":
		return accountCreate(ctx, args[1:], getenv, stdout, stderr)
	case "list":
		return accountList(ctx, args[1:], getenv, stdout, stderr)
	case "set-plan":
		return accountSetPlan(ctx, args[1:], getenv, stdout, stderr)
	}
	return &UsageError{fmt.Sprintf("unknown account subcommand %q (want create, list or set-plan)", args[0])}
}

// newFlagSet returns a flag set that reports a bad flag in one line with a
// hint; -h prints every flag.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors once, through Run, and prints -h itself
	fs.Usage = func() {}
	return fs
}

// parse applies TOKEND_* environment variables as defaults, then the command
// line. Bad values and stray arguments are usage errors; -h prints the flags
// to stderr and returns flag.ErrHelp.
func parse(fs *flag.FlagSet, args []string, getenv Env, stderr io.Writer) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		key := "TOKEND_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(key); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = &UsageError{fmt.Sprintf("%s=%q: %v", key, v, err)}
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "Usage of tokend %s:\n", fs.Name())
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return &UsageError{fmt.Sprintf("%s: %v (run \"tokend %s -h\" to list its flags)", fs.Name(), err, fs.Name())}
	}
	if fs.NArg() > 0 {
		return &UsageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v
}

// nonNegative rejects negative durations from flags.
func nonNegative(name string, d time.Duration) error {
	if d < 0 {
		return &UsageError{fmt.Sprintf("--%s must not be negative", name)}
	}
	return nil
}
