package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/apikey"
	"github.com/tokend/tokend/internal/app"
	"github.com/tokend/tokend/internal/dns"
)

// newResolver is the DNS resolver --dns-resolver names ("" for the system's).
func newResolver(server string) (*dns.Resolver, error) {
	r, err := dns.New(server, dns.Options{})
	if err != nil {
		return nil, &UsageError{"--dns-resolver: " + err.Error()}
	}
	return r, nil
}

// domainVerify checks a domain's DNS records now, as POST .../verify does.
func domainVerify(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("domain verify", stderr)
	db := dbFlag(fs, "SQLite database file, or a postgres:// URL")
	spf := fs.String("spf", "", "SPF mechanism the domains publish, as given to serve (default: a mx)")
	resolver := fs.String("dns-resolver", "", "DNS server to ask, HOST:PORT (default: the system's resolvers)")
	asJSON := fs.Bool("json", false, "print the domain as JSON")
	id, err := parseWithID(fs, args, getenv, stdout, "domain ID", "a sending domain ID")
	if err != nil {
		return err
	}
	r, err := newResolver(*resolver)
	if err != nil {
		return err
	}
	domains, closeDB, err := openDomains(ctx, *db, *spf, r)
	if err != nil {
		return err
	}
	defer closeDB()
	v, err := domains.VerifyAsOperator(ctx, id, operatorName(getenv("USER")))
	if err != nil {
		return domainError("domain verify", id, *db, err)
	}
	return printDomain(stdout, v, *asJSON)
}

// domainTrust lets a domain send whatever its DNS says, or takes that back.
func domainTrust(ctx context.Context, args []string, getenv Env, stdout, stderr io.Writer) error {
	fs := newFlagSet("domain trust", stderr)
	db := dbFlag(fs, "SQLite database file, or a postgres:// URL")
	undo := fs.Bool("undo", false, "stop trusting the domain: it sends again only while DNS verifies it")
	asJSON := fs.Bool("json", false, "print the domain as JSON")
	id, err := parseWithID(fs, args, getenv, stdout, "domain ID", "a sending domain ID")
	if err != nil {
		return err
	}
	domains, closeDB, err := openDomains(ctx, *db, "", nil)
	if err != nil {
		return err
	}
	defer closeDB()
	v, err := domains.Trust(ctx, id, !*undo, operatorName(getenv("USER")))
	if err != nil {
		return domainError("domain trust", id, *db, err)
	}
	return printDomain(stdout, v, *asJSON)
}

// domainError is a domain command's error: the domain it did not find, or
// err after the command's name (Run explains a refusal, EINVALID, in sentences).
func domainError(cmd string, id int64, db string, err error) error {
	return explainNotFound(fmt.Errorf("%s: %w", cmd, err), "%s: no sending domain %d in %s", cmd, id, db)
}

// openDomains opens the database and the domain service over it.
func openDomains(ctx context.Context, db, spf string, r tokend.DNSResolver) (*tokend.Domains, func() error, error) {
	format, err := apikey.NewFormat(apikey.DefaultPrefix)
	if err != nil {
		return nil, nil, err
	}
	store, err := app.OpenStore(ctx, db, false)
	if err != nil {
		return nil, nil, err
	}
	svc := tokend.NewService(store, tokend.Options{Format: format, SPF: spf})
	if _, err := svc.EnsureDomainDNS(ctx); err != nil {
		store.Close()
		return nil, nil, err
	}
	domains := tokend.NewDomains(svc, nil, tokend.DomainOptions{Resolver: r})
	return domains, store.Close, nil
}

// domainJSON is a domain as the CLI prints it with --json: the API's fields.
type domainJSON struct {
	ID            int64             `json:"id"`
	AccountID     int64             `json:"account_id"`
	Name          string            `json:"domain_name"`
	DNSVerified   bool              `json:"dns_verified"`
	DNSVerifiedAt *time.Time        `json:"dns_verified_at"`
	Trusted       bool              `json:"trusted"`
	TrustedAt     *time.Time        `json:"trusted_at"`
	DNSCheckedAt  *time.Time        `json:"dns_checked_at"`
	DNSCheckError *string           `json:"dns_check_error"`
	Records       []domainRecordOut `json:"dns_records"`
}

type domainRecordOut struct {
	Key    string   `json:"key"`
	Domain string   `json:"domain"`
	Type   string   `json:"type"`
	Value  string   `json:"value"`
	Status string   `json:"status"`
	Found  []string `json:"found,omitempty"`
	Detail string   `json:"detail,omitempty"`
}

func printDomain(w io.Writer, v *tokend.ResourceView, asJSON bool) error {
	out := domainJSON{ID: v.ID, AccountID: v.AccountID, Name: v.Name}
	if st := v.DNSState; st != nil {
		out.DNSVerified, out.DNSVerifiedAt = st.VerifiedAt != nil, st.VerifiedAt
		out.Trusted, out.TrustedAt, out.DNSCheckedAt = st.TrustedAt != nil, st.TrustedAt, st.CheckedAt
		if st.CheckError != "" {
			out.DNSCheckError = &st.CheckError
		}
	}
	for _, r := range v.DNS {
		out.Records = append(out.Records, domainRecordOut{Key: r.Key, Domain: r.Domain, Type: r.Type, Value: r.Value,
			Status: r.Status, Found: r.Found, Detail: r.Detail})
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	state := "not verified: live keys cannot send from it"
	switch {
	case out.DNSVerified:
		state = "verified by DNS since " + out.DNSVerifiedAt.Format(time.RFC3339)
	case out.Trusted:
		state = "trusted by an operator (not verified by DNS)"
	}
	if out.DNSVerified && out.Trusted {
		state += ", and trusted by an operator"
	}
	fmt.Fprintf(w, "Sending domain %d %s (account %d): %s\n", out.ID, out.Name, out.AccountID, state)
	if out.DNSCheckError != nil {
		fmt.Fprintf(w, "Last check: %s\n", *out.DNSCheckError)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECORD\tSTATUS\tTYPE\tNAME\tDETAIL")
	for _, r := range out.Records {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Key, r.Status, r.Type, r.Domain, r.Detail)
	}
	return tw.Flush()
}
