package tokend

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// SuppressionType says why an address is suppressed, in Mailtrap's words.
type SuppressionType string

// Suppression types. tokend adds hard bounces itself; the others come
// through the API (manual import) or, later, from complaint feedback.
const (
	SuppressionHardBounce   SuppressionType = "hard bounce"
	SuppressionComplaint    SuppressionType = "spam complaint"
	SuppressionUnsubscribed SuppressionType = "unsubscription"
	SuppressionManual       SuppressionType = "manual import"
)

var suppressionTypes = []SuppressionType{SuppressionHardBounce, SuppressionComplaint, SuppressionUnsubscribed, SuppressionManual}

// Suppression keeps live mail from one address: a send to it is accepted,
// but not relayed for that recipient (its message is rejected, with the
// event saying why). A suppression with a DomainID holds for mail from that
// sending domain; one without holds for every domain of the account.
type Suppression struct {
	ID            string // a UUID, as Mailtrap's
	AccountID     int64
	Email         string // lower-case
	DomainID      int64
	DomainName    string
	Type          SuppressionType
	SendingStream string // always "transactional": tokend has no bulk stream
	CreatedAt     time.Time
	// Source is the message whose bounce added the suppression; nil for
	// one added through the API.
	Source *SuppressionSource
}

// SuppressionSource is what a suppression keeps of the message that caused it.
type SuppressionSource struct {
	MessageID      string    `json:"message_id"`
	Subject        string    `json:"subject"`
	SenderEmail    string    `json:"sender_email"`
	Category       string    `json:"category,omitempty"`
	Response       string    `json:"response,omitempty"`
	BounceCategory string    `json:"bounce_category,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// SuppressionTx is the suppression part of a transaction.
type SuppressionTx interface {
	// AddSuppression stores s unless the account already suppresses that
	// address for that domain (or for every domain, when s.DomainID is 0),
	// and returns the suppression that holds, and whether it is s.
	AddSuppression(ctx context.Context, s *Suppression) (*Suppression, bool, error)
	// Suppressions lists up to limit suppressions of an account, newest
	// first, those of email only when it is not empty.
	Suppressions(ctx context.Context, accountID int64, email string, limit int) ([]Suppression, error)
	// Suppression returns one suppression.
	Suppression(ctx context.Context, id string) (*Suppression, error)
	// DeleteSuppression deletes one suppression.
	DeleteSuppression(ctx context.Context, id string) error
	// SuppressedAmong returns the suppressions of an account that hold for
	// mail from domainID to any of emails (lower-case).
	SuppressedAmong(ctx context.Context, accountID, domainID int64, emails []string) ([]Suppression, error)
}

// MaxSuppressionsListed bounds one listing of suppressions.
const MaxSuppressionsListed = 1000

// Audit actions of suppressions changed through the API.
const (
	ActionSuppressionCreated = "suppression.created"
	ActionSuppressionDeleted = "suppression.deleted"
)

// Suppressions is the suppression list of each account. Create it with
// NewSuppressions.
type Suppressions struct{ svc *Service }

// NewSuppressions returns the suppression lists of svc's accounts.
func NewSuppressions(svc *Service) *Suppressions { return &Suppressions{svc: svc} }

// List returns up to MaxSuppressionsListed suppressions the caller can see,
// newest first: those of every domain to anyone who can read one of the
// account's sending domains, and those of a domain to whoever can read it.
// email, when given, selects one address (case-insensitive). A caller that
// can read no sending domain is EFORBIDDEN.
func (s *Suppressions) List(ctx context.Context, caller *Token, email string) ([]Suppression, error) {
	var out []Suppression
	err := s.svc.store.Read(ctx, func(tx Tx) error {
		c, err := loadCatalog(ctx, tx, caller.AccountID)
		if err != nil {
			return err
		}
		readable := c.domainsReadable(caller)
		if len(readable) == 0 && !caller.IsAccountAdmin() {
			return errNoDomainAccess("see the suppression list")
		}
		all, err := tx.Suppressions(ctx, caller.AccountID, strings.ToLower(strings.TrimSpace(email)), MaxSuppressionsListed)
		if err != nil {
			return err
		}
		out = []Suppression{}
		for _, sp := range all {
			if sp.DomainID == 0 || caller.IsAccountAdmin() || slices.ContainsFunc(readable, func(d Resource) bool { return d.ID == sp.DomainID }) {
				out = append(out, sp)
			}
		}
		return nil
	})
	return out, err
}

// SuppressionInput is a suppression as a caller adds it.
type SuppressionInput struct {
	Email         string
	DomainID      int64 // 0: every sending domain of the account
	Type          SuppressionType
	SendingStream string
}

// Create adds an address to the suppression list: for one sending domain,
// on which the caller must be admin, or for all of them, which takes an
// account admin (EFORBIDDEN otherwise; EINVALID on domain_id for a domain
// that does not exist or that the caller cannot read, the same for both).
// Adding an address that is already suppressed there, or for one domain
// when a suppression of every domain holds, answers the suppression that
// holds, and changes nothing. A suppression of every domain is added even
// when some domains suppress the address already.
func (s *Suppressions) Create(ctx context.Context, caller *Token, in SuppressionInput) (*Suppression, bool, error) {
	var fe FieldErrors
	email := strings.ToLower(strings.TrimSpace(in.Email))
	switch {
	case email == "":
		fe.Add("email", "is required")
	case len(email) > maxAddressLength || !validAddrSpec(email):
		fe.Add("email", "address is invalid")
	}
	if in.Type == "" {
		in.Type = SuppressionManual
	} else if !slices.Contains(suppressionTypes, in.Type) {
		fe.Add("type", fmt.Sprintf("must be one of %q, %q, %q or %q", SuppressionHardBounce, SuppressionComplaint, SuppressionUnsubscribed, SuppressionManual))
	}
	switch in.SendingStream {
	case "", "transactional":
	default:
		fe.Add("sending_stream", "must be transactional: tokend sends no bulk stream")
	}
	if in.DomainID < 0 {
		fe.Add("domain_id", "must be a sending domain's id")
	}
	if err := fe.Err(); err != nil {
		return nil, false, err
	}
	var out *Suppression
	var created bool
	err := s.svc.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		sp := &Suppression{ID: uuid.NewString(), AccountID: caller.AccountID, Email: email, Type: in.Type,
			SendingStream: "transactional", CreatedAt: s.svc.now()}
		if in.DomainID != 0 {
			d, err := bodyDomain(ctx, tx, caller, in.DomainID, "suppress addresses for")
			if err != nil {
				return err
			}
			sp.DomainID, sp.DomainName = d.ID, d.Name
			// A suppression of every domain holds for this one already:
			// answer it rather than add a narrower copy. (A suppression of
			// one domain does not stop one of every domain being added.)
			held, err := tx.SuppressedAmong(ctx, caller.AccountID, d.ID, []string{email})
			if err != nil {
				return err
			}
			if i := slices.IndexFunc(held, func(h Suppression) bool { return h.DomainID == d.ID }); i >= 0 {
				out = &held[i]
				return nil
			}
			if i := slices.IndexFunc(held, func(h Suppression) bool { return h.DomainID == 0 }); i >= 0 {
				out = &held[i]
				return nil
			}
		} else if !caller.IsAccountAdmin() {
			return Errorf(EFORBIDDEN, "Suppressing an address for every sending domain needs account admin access: give domain_id to suppress it for one domain")
		}
		var err error
		if out, created, err = tx.AddSuppression(ctx, sp); err != nil || !created {
			return err
		}
		return s.svc.audit(ctx, tx, caller.AccountID, caller, "", ActionSuppressionCreated, "suppression", 0, suppressionDetails(sp))
	})
	return out, created, err
}

// Delete removes a suppression: the address receives live mail again. It
// takes the access Create takes; a suppression the caller cannot see is
// ENOTFOUND.
func (s *Suppressions) Delete(ctx context.Context, caller *Token, id string) (*Suppression, error) {
	var out *Suppression
	err := s.svc.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		sp, err := tx.Suppression(ctx, id)
		if ErrorCode(err) == ENOTFOUND || err == nil && sp.AccountID != caller.AccountID {
			return errNotFound
		} else if err != nil {
			return err
		}
		if sp.DomainID != 0 {
			if _, err := adminResource(ctx, tx, caller, ResourceDomain, sp.DomainID, "remove suppressions of"); err != nil {
				return err
			}
		} else if !caller.IsAccountAdmin() {
			c, err := loadCatalog(ctx, tx, caller.AccountID)
			if err != nil {
				return err
			}
			if len(c.domainsReadable(caller)) == 0 {
				return errNotFound
			}
			return Errorf(EFORBIDDEN, "Removing a suppression that holds for every sending domain needs account admin access")
		}
		if err := tx.DeleteSuppression(ctx, id); err != nil {
			return err
		}
		out = sp
		return s.svc.audit(ctx, tx, caller.AccountID, caller, "", ActionSuppressionDeleted, "suppression", 0, suppressionDetails(sp))
	})
	return out, err
}

func suppressionDetails(sp *Suppression) map[string]any {
	d := map[string]any{"id": sp.ID, "email": sp.Email, "type": sp.Type}
	if sp.DomainID != 0 {
		d["domain_id"], d["domain_name"] = sp.DomainID, sp.DomainName
	}
	return d
}

// bodyDomain returns the sending domain a request body names as domain_id,
// on which the caller must be admin to verb it (EFORBIDDEN otherwise). A
// domain that does not exist, or that the caller cannot read (another
// account's included), is EINVALID on domain_id, with the same message for
// both: the id is a reference in the body, not the resource of the path.
func bodyDomain(ctx context.Context, tx Tx, caller *Token, id int64, verb string) (*ResourceView, error) {
	d, err := adminResource(ctx, tx, caller, ResourceDomain, id, verb)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Invalid("domain_id", fmt.Sprintf("sending domain %d does not exist", id))
	}
	return d, err
}

// errNoDomainAccess answers a caller that can read no sending domain.
func errNoDomainAccess(verb string) error {
	return Errorf(EFORBIDDEN, "You need access to a sending domain of this account to %s", verb)
}

// domainsReadable returns the sending domains caller can read.
func (c *catalog) domainsReadable(caller *Token) []Resource {
	var out []Resource
	for _, d := range c.domains {
		if caller.LevelOn(d) >= Viewer {
			out = append(out, d)
		}
	}
	return out
}

// suppressBounce puts the recipient of msg, sent as e, on its account's
// suppression list for e's domain after a hard bounce.
func suppressBounce(ctx context.Context, tx Tx, msg *Message, e *StoredEmail, d EmailEventDetails, at time.Time) error {
	if _, err := tx.Resource(ctx, ResourceDomain, e.DomainID); ErrorCode(err) == ENOTFOUND {
		return nil // the domain was deleted since, and its suppressions with it
	} else if err != nil {
		return err
	}
	sp := &Suppression{ID: uuid.NewString(), AccountID: msg.AccountID, Email: strings.ToLower(msg.Recipient), DomainID: e.DomainID,
		DomainName: e.From.Domain(), Type: SuppressionHardBounce, SendingStream: "transactional", CreatedAt: at,
		Source: &SuppressionSource{MessageID: msg.ID, Subject: e.Subject, SenderEmail: e.From.Email, Category: e.Category,
			Response: d.Response, BounceCategory: d.BounceCategory, CreatedAt: e.CreatedAt}}
	_, _, err := tx.AddSuppression(ctx, sp)
	return err
}
