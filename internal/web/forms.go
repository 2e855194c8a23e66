package web

// What the pages' handlers share: the record the path names, and a form's refusal.

import (
	"net/http"
	"strconv"

	"github.com/tokend/tokend"
)

// formError shows a refusal by the rules on the form that caused it, and
// anything else as an error page.
func (s *Server) formError(w http.ResponseWriter, r *http.Request, ses *session, err error, again func(status int, msg string) error) error {
	status, msg := describe(err)
	switch tokend.ErrorCode(err) {
	case tokend.EINVALID, tokend.EFORBIDDEN, tokend.ERATELIMITED, tokend.ETOOLARGE:
		return again(status, msg)
	}
	return err
}

// resource loads the resource of type typ that the path's {id} names, if the
// user can read it (ENOTFOUND otherwise).
func (s *Server) resource(r *http.Request, ses *session, typ tokend.ResourceType) (*tokend.ResourceView, error) {
	id, err := s.pathID(r)
	if err != nil {
		return nil, err
	}
	return s.svc.GetResource(r.Context(), ses.Principal, typ, id)
}

// pathID reads the {id} of the path: the record the page is about.
func (s *Server) pathID(r *http.Request) (int64, error) { return pathInt(r, "id") }

// pathInt reads the path's {name}, the ID of a record: one that cannot be
// is a page that is not there.
func pathInt(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, tokend.Errorf(tokend.ENOTFOUND, "Not Found")
	}
	return id, nil
}
