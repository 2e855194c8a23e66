package client

import (
	"context"
	"net/http"
	"time"
)

// The resources live under /api/accounts/{account_id}; the client fills in
// its token's account (see AccountID and WithAccountID). Every list holds
// what the caller can read; a resource it cannot read, or that does not
// exist, is a 404 (IsNotFound), and a change it is not admin for a 403.

// ResourceAccess is what the caller may do with a resource.
type ResourceAccess struct {
	CanRead    bool `json:"can_read"`    // viewer or admin
	CanUpdate  bool `json:"can_update"`  // admin
	CanDestroy bool `json:"can_destroy"` // admin
}

// Project holds sandboxes.
type Project struct {
	ID        int64          `json:"id"`
	Name      string         `json:"name"`
	CreatedAt time.Time      `json:"created_at"`
	Access    ResourceAccess `json:"permissions"`
}

// Sandbox (an "inbox" in the API's paths) captures the email sent to it.
type Sandbox struct {
	ID        int64          `json:"id"`
	Name      string         `json:"name"`
	ProjectID int64          `json:"project_id"`
	CreatedAt time.Time      `json:"created_at"`
	Access    ResourceAccess `json:"permissions"`
}

// Domain is a sending domain: the domain live mail may be sent from once
// its DNS records prove it (DNSVerified) or an operator trusts it.
type Domain struct {
	ID        int64     `json:"id"`
	Name      string    `json:"domain_name"`
	CreatedAt time.Time `json:"created_at"`
	// ComplianceStatus is "compliant" once live keys may send from the
	// domain, "unverified_dns" before.
	ComplianceStatus string     `json:"compliance_status"`
	DNSVerified      bool       `json:"dns_verified"`
	DNSVerifiedAt    *time.Time `json:"dns_verified_at"`
	Trusted          bool       `json:"trusted"`
	TrustedAt        *time.Time `json:"trusted_at"`
	DNSCheckedAt     *time.Time `json:"dns_checked_at"`
	// DNSCheckError says why the last check could not run (nothing changed
	// then), or why passing records did not verify the domain.
	DNSCheckError *string `json:"dns_check_error"`
	// DNSRecords are the records to publish (verification, SPF, DKIM,
	// DMARC), each with what the last check found.
	DNSRecords []DNSRecord    `json:"dns_records"`
	Access     ResourceAccess `json:"permissions"`
}

// DNSRecord is a record a sending domain's owner publishes.
type DNSRecord struct {
	Key    string `json:"key"`    // what it is for: verification, spf, dkim, dmarc
	Domain string `json:"domain"` // the full name to publish it under
	Name   string `json:"name"`   // the name relative to the domain
	Type   string `json:"type"`   // TXT
	Value  string `json:"value"`
	// Status is "unchecked", "pass", "missing" or "mismatch"; with
	// mismatch, Found lists the records found at that name.
	Status string   `json:"status"`
	Found  []string `json:"found,omitempty"`
	Detail string   `json:"detail,omitempty"`
}

// CreatedDomain is a new sending domain with the token made for it: admin
// on the domain, named "<domain> token <id>". Its Value is shown only here.
type CreatedDomain struct {
	Domain
	Token IssuedToken `json:"api_token"`
}

type nameBody struct {
	Name string `json:"name"`
}

// ListProjects returns the projects the caller can read, in id order.
func (c *Client) ListProjects(ctx context.Context) ([]Project, error) {
	var out []Project
	if err := c.inAccount(ctx, http.MethodGet, nil, &out, "projects"); err != nil {
		return nil, err
	}
	return out, nil
}

// GetProject returns one project.
func (c *Client) GetProject(ctx context.Context, id int64) (*Project, error) {
	var out Project
	if err := c.inAccount(ctx, http.MethodGet, nil, &out, "projects", id); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateProject creates a project; the caller must be account admin.
func (c *Client) CreateProject(ctx context.Context, name string) (*Project, error) {
	var out Project
	in := struct {
		Project nameBody `json:"project"`
	}{nameBody{name}}
	if err := c.inAccount(ctx, http.MethodPost, in, &out, "projects"); err != nil {
		return nil, err
	}
	return &out, nil
}

// RenameProject renames a project the caller is admin on.
func (c *Client) RenameProject(ctx context.Context, id int64, name string) (*Project, error) {
	var out Project
	in := struct {
		Project nameBody `json:"project"`
	}{nameBody{name}}
	if err := c.inAccount(ctx, http.MethodPatch, in, &out, "projects", id); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteProject deletes a project with its sandboxes and their mail, and
// takes every permission naming them from the account's tokens.
func (c *Client) DeleteProject(ctx context.Context, id int64) error {
	return c.inAccount(ctx, http.MethodDelete, nil, nil, "projects", id)
}

// ListSandboxes returns the sandboxes the caller can read, in id order.
func (c *Client) ListSandboxes(ctx context.Context) ([]Sandbox, error) {
	var out []Sandbox
	if err := c.inAccount(ctx, http.MethodGet, nil, &out, "inboxes"); err != nil {
		return nil, err
	}
	return out, nil
}

// GetSandbox returns one sandbox.
func (c *Client) GetSandbox(ctx context.Context, id int64) (*Sandbox, error) {
	var out Sandbox
	if err := c.inAccount(ctx, http.MethodGet, nil, &out, "inboxes", id); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateSandbox creates a sandbox in a project the caller is admin on.
func (c *Client) CreateSandbox(ctx context.Context, projectID int64, name string) (*Sandbox, error) {
	var out Sandbox
	in := struct {
		Inbox nameBody `json:"inbox"`
	}{nameBody{name}}
	if err := c.inAccount(ctx, http.MethodPost, in, &out, "projects", projectID, "inboxes"); err != nil {
		return nil, err
	}
	return &out, nil
}

// RenameSandbox renames a sandbox the caller is admin on.
func (c *Client) RenameSandbox(ctx context.Context, id int64, name string) (*Sandbox, error) {
	var out Sandbox
	in := struct {
		Inbox nameBody `json:"inbox"`
	}{nameBody{name}}
	if err := c.inAccount(ctx, http.MethodPatch, in, &out, "inboxes", id); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteSandbox deletes a sandbox with its captured mail.
func (c *Client) DeleteSandbox(ctx context.Context, id int64) error {
	return c.inAccount(ctx, http.MethodDelete, nil, nil, "inboxes", id)
}

// ListDomains returns the sending domains the caller can read, in id order.
func (c *Client) ListDomains(ctx context.Context) ([]Domain, error) {
	var out struct {
		Data []Domain `json:"data"`
	}
	if err := c.inAccount(ctx, http.MethodGet, nil, &out, "sending_domains"); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// GetDomain returns one sending domain with its DNS records.
func (c *Client) GetDomain(ctx context.Context, id int64) (*Domain, error) {
	var out Domain
	if err := c.inAccount(ctx, http.MethodGet, nil, &out, "sending_domains", id); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateDomain adds a sending domain (name such as "mail.example.com"; the
// caller must be account admin) with its DKIM key and its own token.
// Domains cannot be renamed.
func (c *Client) CreateDomain(ctx context.Context, name string) (*CreatedDomain, error) {
	var out CreatedDomain
	in := struct {
		SendingDomain struct {
			DomainName string `json:"domain_name"`
		} `json:"sending_domain"`
	}{}
	in.SendingDomain.DomainName = name
	if err := c.inAccount(ctx, http.MethodPost, in, &out, "sending_domains"); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyDomain checks a sending domain's DNS records now and returns the
// domain with what was found (the caller must be admin on it).
func (c *Client) VerifyDomain(ctx context.Context, id int64) (*Domain, error) {
	var out Domain
	if err := c.inAccount(ctx, http.MethodPost, nil, &out, "sending_domains", id, "verify"); err != nil {
		return nil, err
	}
	return &out, nil
}

// SendSetupInstructions mails a sending domain's DNS records to email, for
// whoever manages its DNS.
func (c *Client) SendSetupInstructions(ctx context.Context, id int64, email string) error {
	in := struct {
		Email string `json:"email"`
	}{email}
	return c.inAccount(ctx, http.MethodPost, in, nil, "sending_domains", id, "send_setup_instructions")
}

// DeleteDomain deletes a sending domain; mail can no longer be sent from it.
func (c *Client) DeleteDomain(ctx context.Context, id int64) error {
	return c.inAccount(ctx, http.MethodDelete, nil, nil, "sending_domains", id)
}

// inAccount is do on /api/accounts/{account_id}/parts...
func (c *Client) inAccount(ctx context.Context, method string, in, out any, parts ...any) error {
	path, err := c.accountPath(ctx, parts...)
	if err != nil {
		return err
	}
	return c.do(ctx, method, path, nil, in, out)
}
