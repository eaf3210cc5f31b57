package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/percorso/percorso/adapters/wire"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/query"
)

// WithAudit enables history, verification and the log of auditors' reads.
func (s *Server) WithAudit(a query.Auditor, reads query.ReadLog) *Server {
	s.auditor, s.reads = a, reads
	return s
}

func (s *Server) historyRoutes() {
	s.mux.HandleFunc("GET /v1/paths/{path_id}/history", s.authed(s.history))
	s.mux.HandleFunc("GET /v1/paths/{path_id}/verify", s.authed(s.verify))
	s.mux.HandleFunc("GET /v1/audit/reads", s.authed(s.auditReads))
}

func (s *Server) history(w http.ResponseWriter, r *http.Request, p access.Principal) {
	id := r.PathValue("path_id")
	opt := query.HistoryOptions{Personal: p.SeesPersonalData()}
	if v := r.URL.Query().Get("as_of"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.fail(w, r, fault.Rulef(fault.CodeInvalidDate, "as_of must be an RFC 3339 time").OnField("as_of"))
			return
		}
		opt.AsOf = &t
	}
	if !s.auditable(w, r, p, id) {
		return
	}
	h, err := s.auditor.History(r.Context(), id, opt)
	if err != nil {
		s.failRead(w, r, err)
		return
	}
	if err := wire.Authorize(p, access.ActReadHistory, h.Office); err != nil {
		s.fail(w, r, err)
		return
	}
	s.recordRead(r, p, "history", id)
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request, p access.Principal) {
	id := r.PathValue("path_id")
	if !s.auditable(w, r, p, id) {
		return
	}
	v, err := s.auditor.Verify(r.Context(), id)
	if err != nil {
		s.failRead(w, r, err)
		return
	}
	if err := wire.Authorize(p, access.ActReadHistory, v.Office); err != nil {
		s.fail(w, r, err)
		return
	}
	s.recordRead(r, p, "verify", id)
	writeJSON(w, http.StatusOK, v)
}

// auditable answers the checks every history read shares.
func (s *Server) auditable(w http.ResponseWriter, r *http.Request, p access.Principal, id string) bool {
	if s.auditor == nil {
		s.fail(w, r, fault.New(fault.Unavailable, fault.CodeUnavailable, "history is not available on this instance"))
		return false
	}
	if p.Role == access.RoleAnalyst {
		s.fail(w, r, fault.New(fault.Forbidden, fault.CodeForbidden, "analysts read aggregate reports only"))
		return false
	}
	if !command.ValidUUID(id) {
		s.fail(w, r, fault.New(fault.NotFound, fault.CodePathNotFound, "path not found"))
		return false
	}
	return true
}

func (s *Server) failRead(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, query.ErrNotFound) {
		s.fail(w, r, fault.New(fault.NotFound, fault.CodePathNotFound, "path not found"))
		return
	}
	s.fail(w, r, &fault.Error{Kind: fault.Unavailable, Code: fault.CodeUnavailable, Message: "the event stream is unavailable", Err: err})
}

// recordRead keeps who read what and when, for auditors (API.md: their
// reads are themselves recorded). A failure to record is logged, not fatal
// to the read: the log is not the record of the path.
func (s *Server) recordRead(r *http.Request, p access.Principal, action, id string) {
	if !p.ReadsAudited() || s.reads == nil {
		return
	}
	if err := s.reads.RecordRead(r.Context(), query.AuditRead{At: time.Now().UTC(), Principal: p.Name, Action: action, PathID: id}); err != nil {
		s.log.Error("recording an auditor's read", "principal", p.Name, "action", action, "err", err)
	}
}

func (s *Server) auditReads(w http.ResponseWriter, r *http.Request, p access.Principal) {
	if err := wire.Authorize(p, access.ActAdmin, ""); err != nil {
		s.fail(w, r, err)
		return
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.fail(w, r, fault.Invalidf("limit", "limit must be 1 to 1000"))
			return
		}
		limit = n
	}
	if s.reads == nil {
		s.fail(w, r, fault.New(fault.Unavailable, fault.CodeUnavailable, "the read log is not available"))
		return
	}
	who := r.URL.Query().Get("principal")
	if len(who) > 200 || !utf8.ValidString(who) || strings.ContainsFunc(who, unicode.IsControl) {
		s.fail(w, r, fault.Invalidf("principal", "principal must be a principal's name"))
		return
	}
	reads, err := s.reads.Reads(r.Context(), who, limit)
	if err != nil {
		s.fail(w, r, &fault.Error{Kind: fault.Unavailable, Code: fault.CodeUnavailable, Message: "the read log is unavailable", Err: err})
		return
	}
	if reads == nil {
		reads = []query.AuditRead{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"reads": reads})
}
