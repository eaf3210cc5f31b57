package httpapi

import (
	"errors"
	"net/http"

	"github.com/percorso/percorso/adapters/wire"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/query"
)

// WithProjections enables the admin endpoints of the projectors.
func (s *Server) WithProjections(p query.Projections) *Server {
	s.projections = p
	return s
}

func (s *Server) adminRoutes() {
	s.mux.HandleFunc("GET /v1/admin/projections/poison", s.authed(s.listPoison))
	s.mux.HandleFunc("POST /v1/admin/projections/poison/{seq}/skip", s.authed(s.skipPoison))
}

func (s *Server) admin(w http.ResponseWriter, r *http.Request, p access.Principal) bool {
	if err := wire.Authorize(p, access.ActAdmin, ""); err != nil {
		s.fail(w, r, err)
		return false
	}
	if s.projections == nil {
		s.fail(w, r, fault.New(fault.Unavailable, fault.CodeUnavailable, "projections are not managed by this instance"))
		return false
	}
	return true
}

func (s *Server) listPoison(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !s.admin(w, r, p) {
		return
	}
	list, err := s.projections.Poisoned(r.Context())
	if err != nil {
		s.fail(w, r, &fault.Error{Kind: fault.Unavailable, Code: fault.CodeUnavailable, Message: "read models unavailable", Err: err})
		return
	}
	if list == nil {
		list = []query.Poison{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"poison": list})
}

// skipPoison is the one way past an event a projection cannot apply: an
// admin, by name, on the record.
func (s *Server) skipPoison(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if !s.admin(w, r, p) {
		return
	}
	seq, ok := parseSeq(r.PathValue("seq"))
	if !ok {
		s.fail(w, r, fault.Invalidf("seq", "seq must be a stream sequence number"))
		return
	}
	if err := s.projections.Skip(r.Context(), seq, p.Name); err != nil {
		if errors.Is(err, query.ErrNotFound) {
			s.fail(w, r, fault.New(fault.NotFound, fault.CodeNotFound, "no unskipped poison event at sequence %d", seq))
			return
		}
		s.fail(w, r, &fault.Error{Kind: fault.Unavailable, Code: fault.CodeUnavailable, Message: "read models unavailable", Err: err})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"skipped": seq, "by": p.Name})
}

func parseSeq(v string) (uint64, bool) {
	var n uint64
	if v == "" || len(v) > 19 {
		return 0, false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, n > 0
}
