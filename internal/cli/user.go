package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend"
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
	db := fs.String("db", "./tokend.db", "SQLite database file")
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
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read the password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	svc, closeDB, err := openService(ctx, *db, "tk", false)
	if err != nil {
		return err
	}
	defer closeDB()
	u, err := svc.Users().Create(ctx, tokend.NewUser{AccountID: *account, Email: *email, Name: *name, Role: level, Password: password})
	if err != nil {
		var e *tokend.Error
		switch {
		case errors.As(err, &e) && e.Code == tokend.EINVALID:
			return &UsageError{fmt.Sprintf("user create: %v", e)}
		case tokend.ErrorCode(err) == tokend.ENOTFOUND:
			return fmt.Errorf("user create: no account %d in %s", *account, *db)
		}
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(toUserJSON(u))
	}
	fmt.Fprintf(stdout, "Created user %d %s (%s of account %d). They sign in at /login.\n", u.ID, u.Email, toUserJSON(u).Role, u.AccountID)
	return nil
}

func userList(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("user list", stderr)
	db := fs.String("db", "./tokend.db", "SQLite database file")
	asJSON := fs.Bool("json", false, "print the users as JSON")
	if err := parse(fs, args, getenv, stdout); err != nil {
		return err
	}
	svc, closeDB, err := openService(ctx, *db, "tk", false)
	if err != nil {
		return err
	}
	defer closeDB()
	users, err := svc.Users().List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]userJSON, len(users))
		for i := range users {
			out[i] = toUserJSON(&users[i])
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tACCOUNT\tEMAIL\tNAME\tROLE\tCREATED")
	for i := range users {
		u := toUserJSON(&users[i])
		fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s\n", u.ID, u.AccountID, u.Email, u.Name, u.Role, u.CreatedAt.Format(time.RFC3339))
	}
	return w.Flush()
}
