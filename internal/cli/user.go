package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
)

type userJSON struct {
	ID        int64     `json:"id"`
	AccountID int64     `json:"account_id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

func toUserJSON(u *tokend.User) userJSON {
	role := "viewer"
	if u.Role == tokend.Admin {
		role = "admin"
	}
	return userJSON{ID: u.ID, AccountID: u.AccountID, Email: u.Email, Name: u.Name, Role: role, CreatedAt: u.CreatedAt}
}

// userCreate reads the password from standard input (its first line), never
// from a flag, where other users of the machine could read it.
func userCreate(ctx context.Context, args []string, getenv Env, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("user create", stderr)
	account := fs.Int64("account", 0, "the account the user belongs to (required)")
	email := fs.String("email", "", "the email the user signs in with (required)")
	name := fs.String("name", "", "the user's name")
	role := fs.String("role", "admin", "role on the account: admin or viewer")
	passwordStdin := fs.Bool("password-stdin", false, "read the password from standard input (required)")
	db := dbFlag(fs, "SQLite database file")
	asJSON := fs.Bool("json", false, "print the user as JSON")
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	switch {
	case *account <= 0 || *email == "":
		return &UsageError{"user create: --account and --email are required"}
	case !*passwordStdin:
		return &UsageError{"user create: --password-stdin is required: pass the password on standard input, never as a flag"}
	}
	level, ok := tokend.ParseRole(*role)
	if !ok {
		return &UsageError{fmt.Sprintf("user create: --role must be admin or viewer, not %q", *role)}
	}
	if stdin == nil {
		return &UsageError{"user create: no standard input to read the password from"}
	}
	password, err := readPassword("user create", stdin)
	if err != nil {
		return err
	}
	svc, closeDB, err := openService(ctx, *db, apikey.DefaultPrefix, false)
	if err != nil {
		return err
	}
	defer closeDB()
	u, err := svc.Users().Create(ctx, tokend.NewUser{AccountID: *account, Email: *email, Name: *name, Role: level, Password: password})
	if err != nil {
		return explainNotFound(err, "user create: no account %d in %s", *account, *db)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(toUserJSON(u))
	}
	fmt.Fprintf(stdout, "Created user %d %s (%s of account %d). They sign in at /login.\n", u.ID, u.Email, toUserJSON(u).Role, u.AccountID)
	return nil
}

func userList(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("user list", stderr)
	db := dbFlag(fs, "SQLite database file")
	asJSON := fs.Bool("json", false, "print the users as JSON")
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	svc, closeDB, err := openService(ctx, *db, apikey.DefaultPrefix, false)
	if err != nil {
		return err
	}
	defer closeDB()
	users, err := svc.Users().List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONList(stdout, users, toUserJSON)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tACCOUNT\tEMAIL\tNAME\tROLE\tCREATED")
	for i := range users {
		u := toUserJSON(&users[i])
		fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s\n", u.ID, u.AccountID, u.Email, u.Name, u.Role, u.CreatedAt.Format(time.RFC3339))
	}
	return w.Flush()
}

// readPassword reads a password from the first line of stdin. An empty one
// is a usage error that says so, rather than a password too short.
func readPassword(cmd string, stdin io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("%s: read the password: %w", cmd, err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return "", &UsageError{cmd + ": the password on standard input is empty: give it as the first line of standard input"}
	}
	return password, nil
}

func userDelete(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("user delete", stderr)
	db := dbFlag(fs, "SQLite database file")
	id, err := parseWithID(fs, args, getenv, stdout, "user ID", "a user ID")
	if err != nil {
		return err
	}
	svc, closeDB, err := openService(ctx, *db, apikey.DefaultPrefix, false)
	if err != nil {
		return err
	}
	defer closeDB()
	u, err := svc.Users().Delete(ctx, id)
	if err != nil {
		return explainNotFound(err, "user delete: no user %d in %s", id, *db)
	}
	fmt.Fprintf(stdout, "Deleted user %d %s; their sessions ended at once.\n", u.ID, u.Email)
	return nil
}

func userSetPassword(ctx context.Context, args []string, getenv Env, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("user set-password", stderr)
	db := dbFlag(fs, "SQLite database file")
	passwordStdin := fs.Bool("password-stdin", false, "read the new password from standard input (required)")
	id, err := parseWithID(fs, args, getenv, stdout, "user ID", "a user ID")
	if err != nil {
		return err
	}
	if !*passwordStdin || stdin == nil {
		return &UsageError{"user set-password: --password-stdin is required: pass the password on standard input, never as a flag"}
	}
	password, err := readPassword("user set-password", stdin)
	if err != nil {
		return err
	}
	svc, closeDB, err := openService(ctx, *db, apikey.DefaultPrefix, false)
	if err != nil {
		return err
	}
	defer closeDB()
	u, err := svc.Users().SetPassword(ctx, id, password)
	if err != nil {
		return explainNotFound(err, "user set-password: no user %d in %s", id, *db)
	}
	fmt.Fprintf(stdout, "Set a new password for user %d %s; their sessions ended.\n", u.ID, u.Email)
	return nil
}

// userSetupLink prints a new setup link: whoever opens it first chooses the
// email, name and password of a new user of the account, with the role the
// link carries. Issuing one ends the account's earlier links, so a link lost
// or leaked is replaced by running the command again.
func userSetupLink(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("user setup-link", stderr)
	account := fs.Int64("account", 0, "the account the new user joins (required)")
	role := fs.String("role", "admin", "role the new user gets on the account: admin or viewer")
	base := fs.String("url", "http://127.0.0.1:8080", "the URL people's browsers reach tokend at, which the link starts with")
	db := dbFlag(fs, "SQLite database file, or a postgres:// URL")
	asJSON := fs.Bool("json", false, "print the link as JSON")
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	if *account <= 0 {
		return &UsageError{"user setup-link: --account ID is required"}
	}
	level, ok := tokend.ParseRole(*role)
	if !ok {
		return &UsageError{fmt.Sprintf("user setup-link: --role must be admin or viewer, not %q", *role)}
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return &UsageError{fmt.Sprintf("user setup-link: --url %q is not an http or https URL such as https://tokend.example.com", *base)}
	}
	svc, closeDB, err := openService(ctx, *db, apikey.DefaultPrefix, false)
	if err != nil {
		return err
	}
	defer closeDB()
	link, err := svc.Users().IssueSetupLink(ctx, *account, level, operatorName(getenv("USER")))
	if err != nil {
		return explainNotFound(err, "user setup-link: no account %d in %s", *account, *db)
	}
	full := setupURL(u.String(), link.Code)
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{"url": full, "account_id": *account, "role": *role,
			"expires_at": link.Invite.ExpiresAt, "replaced": link.Replaced})
	}
	fmt.Fprintf(stdout, "Open this link within 7 days to set up a new %s of account %d (it works once):\n\n    %s\n\n", *role, *account, full)
	if link.Replaced > 0 {
		fmt.Fprintf(stdout, "The account's %d earlier setup link(s) no longer work.\n", link.Replaced)
	}
	return nil
}

// setupURL is the link that sets up a dashboard user, on the tokend at base.
func setupURL(base, code string) string {
	return strings.TrimSuffix(base, "/") + "/setup?code=" + code
}
