package client

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Token environments: a test key never delivers real email (its sends are
// captured in the account's "Test key sends" sandbox).
const (
	EnvironmentLive = "live"
	EnvironmentTest = "test"
)

// Identity is the calling token as tokend sees it (GET /api/whoami).
type Identity struct {
	ID          int64        `json:"id"`
	Name        string       `json:"name"`
	AccountID   int64        `json:"account_id"`
	Environment string       `json:"environment"` // EnvironmentLive or EnvironmentTest
	ExpiresAt   *time.Time   `json:"expires_at"`  // nil: never expires
	Permissions []Permission `json:"resources"`
}

// Account is an account the calling token can see, with the token's
// account-level access levels (empty when it only holds permissions on
// resources inside the account).
type Account struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	AccessLevels []int  `json:"access_levels"`
}

// Whoami describes the calling token. It is the cheapest authenticated
// request, so it also serves to check that a token works. It remembers the
// token's account for the methods under /api/accounts/{account_id}.
func (c *Client) Whoami(ctx context.Context) (*Identity, error) {
	var out Identity
	if err := c.do(ctx, http.MethodGet, "/api/whoami", nil, nil, &out); err != nil {
		return nil, err
	}
	c.account.set(out.AccountID)
	return &out, nil
}

// ListAccounts returns the accounts the calling token can see: its own.
func (c *Client) ListAccounts(ctx context.Context) ([]Account, error) {
	var out []Account
	if err := c.do(ctx, http.MethodGet, "/api/accounts", nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Health checks GET /healthz; nil means tokend is up.
func (c *Client) Health(ctx context.Context) error {
	var out struct {
		Status string `json:"status"`
	}
	if err := c.do(ctx, http.MethodGet, "/healthz", nil, nil, &out); err != nil {
		return err
	}
	if out.Status != "ok" {
		return fmt.Errorf("tokend: GET /healthz: status %q", out.Status)
	}
	return nil
}

// WithAccountID tells the client the account its token belongs to, so that
// the methods under /api/accounts/{account_id} (projects, sandboxes, sending
// domains) need not ask tokend first. Without it the client asks once, with
// Whoami, and remembers the answer. A wrong id makes those methods answer
// 404, as tokend hides other accounts.
func WithAccountID(id int64) Option { return func(c *Client) { c.account.set(id) } }

// accountCache holds the token's account id once known. A token never
// changes account, so the id is never looked up again; a failed lookup is
// not remembered.
type accountCache struct {
	mu sync.Mutex
	id int64
}

func (a *accountCache) set(id int64) {
	if id <= 0 {
		return
	}
	a.mu.Lock()
	a.id = id
	a.mu.Unlock()
}

func (a *accountCache) get() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

// AccountID returns the account of the client's token: the one given with
// WithAccountID, else the one Whoami answers (asked once, then remembered).
func (c *Client) AccountID(ctx context.Context) (int64, error) {
	if id := c.account.get(); id != 0 {
		return id, nil
	}
	who, err := c.Whoami(ctx)
	if err != nil {
		return 0, fmt.Errorf("tokend: look up the token's account: %w", err)
	}
	return who.AccountID, nil
}

// accountPath returns "/api/accounts/{account_id}" followed by the parts.
func (c *Client) accountPath(ctx context.Context, parts ...any) (string, error) {
	id, err := c.AccountID(ctx)
	if err != nil {
		return "", err
	}
	return "/api/accounts/" + strconv.FormatInt(id, 10) + joinPath(parts...), nil
}

// joinPath renders parts as "/p1/p2...": int64s in decimal, strings as they
// are (literal segments; send escapes the path as a whole).
func joinPath(parts ...any) string {
	var b []byte
	for _, p := range parts {
		b = append(b, '/')
		switch v := p.(type) {
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case string:
			b = append(b, v...)
		default:
			b = fmt.Append(b, v)
		}
	}
	return string(b)
}
