// Package httpapi is percorso's HTTP edge: the commands and queries of
// API.md on net/http, with bearer-token authentication, office scope, strict
// decoding and one error table (shared with the NATS edge through wire).
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/percorso/percorso/adapters/wire"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/domain/workerpath"
)

// Check is a named readiness probe.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Projection is what the API needs of the projector: how far it got, and a
// signal when it moves, for read-your-writes.
type Projection interface {
	Applied() uint64
	Changed() <-chan struct{}
}

// Server is the HTTP API.
type Server struct {
	commands    *command.Handler
	reader      query.Reader
	auth        *access.Directory
	limiter     *access.Limiter
	log         *slog.Logger
	projection  Projection
	checks      []Check
	metrics     *Metrics
	auditor     query.Auditor
	reads       query.ReadLog
	projections query.Projections
	mux         *http.ServeMux
	// MinVersionWait bounds read-your-writes waits (API.md: 5 s).
	MinVersionWait time.Duration
}

// New returns the API server's handler.
func New(commands *command.Handler, reader query.Reader, auth *access.Directory, projection Projection, log *slog.Logger, checks ...Check) *Server {
	s := &Server{commands: commands, reader: reader, auth: auth, limiter: access.NewLimiter(30), log: log,
		projection: projection, checks: checks, metrics: NewMetrics(), mux: http.NewServeMux(), MinVersionWait: 5 * time.Second}
	s.routes()
	return s
}

func (s *Server) routes() {
	cmd := func(name string) http.HandlerFunc { return s.command(name) }
	s.mux.HandleFunc("POST /v1/paths", cmd(wire.CmdTakeInCharge))
	s.mux.HandleFunc("POST /v1/paths/{path_id}/sessions", cmd(wire.CmdDeliverSession))
	s.mux.HandleFunc("POST /v1/group-sessions", cmd(wire.CmdDeliverGroupSession))
	s.mux.HandleFunc("POST /v1/paths/{path_id}/pact", cmd(wire.CmdSignPact))
	s.mux.HandleFunc("POST /v1/paths/{path_id}/traineeships", cmd(wire.CmdActivateTraineeship))
	s.mux.HandleFunc("POST /v1/paths/{path_id}/verification", cmd(wire.CmdVerifyPath))
	s.mux.HandleFunc("POST /v1/paths/{path_id}/no-shows", cmd(wire.CmdRecordNoShow))
	s.mux.HandleFunc("POST /v1/paths/{path_id}/refusals", cmd(wire.CmdReportRefusal))
	s.mux.HandleFunc("POST /v1/paths/{path_id}/close", cmd(wire.CmdClosePath))
	s.mux.HandleFunc("POST /v1/workers/{tax_code}/erasure", cmd(wire.CmdEraseWorker))
	s.mux.HandleFunc("GET /v1/paths/{path_id}", s.getPath)
	s.mux.HandleFunc("GET /v1/catalogue/services", s.authed(func(w http.ResponseWriter, r *http.Request, _ access.Principal) {
		writeJSON(w, http.StatusOK, map[string]any{"catalogue_version": workerpath.CatalogueVersion, "services": workerpath.Services()})
	}))
	s.mux.HandleFunc("GET /v1/catalogue/offices", s.authed(func(w http.ResponseWriter, r *http.Request, _ access.Principal) {
		writeJSON(w, http.StatusOK, map[string]any{"offices": office.All(), "provinces": office.Provinces()})
	}))
	s.reportRoutes()
	s.historyRoutes()
	s.adminRoutes()
	s.openAPIRoutes()
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	s.mux.HandleFunc("GET /metrics", s.metrics.ServeHTTP)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allowed := s.allowedMethods(r); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			s.fail(w, r, fault.New(fault.MethodNotAllowed, fault.CodeMethodNotAllowed, "this route does not take %s; it takes %s", r.Method, strings.Join(allowed, ", ")))
			return
		}
		s.fail(w, r, fault.New(fault.NotFound, fault.CodeNotFound, "no route for this %s request (the URL is not echoed: it may hold a tax code); see /openapi.json", r.Method))
	})
}

// allowedMethods lists the methods the routes take at r's URL, none when
// no route has it: a known URL with another method is a 405, not a 404.
func (s *Server) allowedMethods(r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		if _, pattern := s.mux.Handler(&http.Request{Method: m, URL: r.URL, Host: r.Host}); pattern != "/" && pattern != "" {
			out = append(out, m)
		}
	}
	return out
}

// ServeHTTP makes the Server an http.Handler; a panic becomes a logged 500,
// never a dropped connection.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", "method", r.Method, "route", r.Pattern, "panic", v)
			s.fail(w, r, fault.Wrap(errors.New("panic"), "internal error"))
		}
	}()
	s.mux.ServeHTTP(w, r)
}

// HTTPServer wraps the handler with the timeouts a public server needs.
func HTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr: addr, Handler: h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// principal authenticates a request. A valid token always gets in; failed
// attempts are counted per client address, and past the limit a failure is
// answered 429 instead of 401, which slows guessing without locking out the
// other users behind the same office address.
func (s *Server) principal(r *http.Request) (access.Principal, error) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return access.Principal{}, fault.New(fault.Unauthenticated, fault.CodeUnauthenticated, "an Authorization: Bearer token is required")
	}
	p, err := s.auth.Authenticate(token)
	if err == nil {
		return p, nil
	}
	if !s.limiter.Allow(clientIP(r), time.Now()) {
		return access.Principal{}, fault.New(fault.TooMany, fault.CodeTooManyRequests, "too many failed authentications: try again later")
	}
	return access.Principal{}, fault.New(fault.Unauthenticated, fault.CodeUnauthenticated, "unknown token")
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) authed(fn func(http.ResponseWriter, *http.Request, access.Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.principal(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		fn(w, r, p)
	}
}

func (s *Server) command(name string) http.HandlerFunc {
	return s.authed(func(w http.ResponseWriter, r *http.Request, p access.Principal) {
		start := time.Now()
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, wire.MaxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				err = fault.New(fault.TooLarge, fault.CodeTooLarge, "request body is larger than %d bytes", wire.MaxBody)
			} else {
				err = fault.New(fault.Invalid, fault.CodeMalformedJSON, "could not read the request body")
			}
			s.metrics.Command(name, fault.CodeOf(err), time.Since(start))
			s.fail(w, r, err)
			return
		}
		call := wire.Call{Name: name, Principal: p, PathID: r.PathValue("path_id"), TaxCode: r.PathValue("tax_code"), Body: body,
			IdempotencyKey: r.Header.Get("Idempotency-Key"), CorrelationID: r.Header.Get("X-Correlation-Id")}
		if v := r.Header.Get("If-Match"); v != "" {
			n, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
			if err != nil {
				s.fail(w, r, fault.Invalidf("If-Match", "If-Match must be a version number, e.g. \"42\""))
				return
			}
			call.IfMatch = &n
		}
		res, err := wire.Dispatch(r.Context(), s.commands, call)
		s.metrics.Command(name, fault.CodeOf(err), time.Since(start))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if res.PathID != "" {
			w.Header().Set("ETag", `"`+strconv.FormatUint(res.Version, 10)+`"`)
			if name == wire.CmdTakeInCharge {
				w.Header().Set("Location", "/v1/paths/"+res.PathID)
			}
		}
		status := http.StatusCreated
		if name == wire.CmdEraseWorker {
			status = http.StatusOK
		}
		writeJSON(w, status, res)
	})
}

func (s *Server) getPath(w http.ResponseWriter, r *http.Request) {
	p, err := s.principal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !p.SeesPersonalData() {
		s.fail(w, r, fault.New(fault.Forbidden, fault.CodeForbidden, "analysts read aggregate reports only"))
		return
	}
	id := r.PathValue("path_id")
	if !command.ValidUUID(id) {
		s.fail(w, r, fault.New(fault.NotFound, fault.CodePathNotFound, "path not found"))
		return
	}
	var minVersion uint64
	if v := r.URL.Query().Get("min_version"); v != "" {
		if minVersion, err = strconv.ParseUint(v, 10, 64); err != nil {
			s.fail(w, r, fault.Invalidf("min_version", "min_version must be a non-negative integer"))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.MinVersionWait)
	defer cancel()
	for {
		var changed <-chan struct{}
		if s.projection != nil {
			changed = s.projection.Changed()
		}
		view, err := s.reader.Path(ctx, id)
		if err == nil && view.Version >= minVersion {
			if err := wire.Authorize(p, access.ActReadPath, view.Office); err != nil {
				s.fail(w, r, err)
				return
			}
			s.recordRead(r, p, "path", id)
			w.Header().Set("ETag", `"`+strconv.FormatUint(view.Version, 10)+`"`)
			writeJSON(w, http.StatusOK, view)
			return
		}
		if err != nil && !errors.Is(err, query.ErrNotFound) && ctx.Err() == nil {
			s.fail(w, r, &fault.Error{Kind: fault.Unavailable, Code: fault.CodeUnavailable, Message: "read models unavailable", Err: err})
			return
		}
		if minVersion == 0 {
			s.fail(w, r, fault.New(fault.NotFound, fault.CodePathNotFound, "path not found"))
			return
		}
		select {
		case <-ctx.Done():
			if r.Context().Err() != nil {
				return
			}
			s.fail(w, r, fault.New(fault.Timeout, fault.CodeTimeout, "the read model has not reached version %d yet", minVersion))
			return
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status := http.StatusOK
	out := map[string]string{}
	for _, c := range s.checks {
		if err := c.Fn(ctx); err != nil {
			status = http.StatusServiceUnavailable
			out[c.Name] = err.Error()
		} else {
			out[c.Name] = "ok"
		}
	}
	writeJSON(w, status, map[string]any{"ready": status == http.StatusOK, "checks": out})
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := fault.As(err)
	status := wire.Status(e.Kind)
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "route", r.Pattern, "status", status, "code", e.Code, "err", e.Err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="percorso"`)
	}
	writeJSON(w, status, wire.Body(e))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

// Metrics returns the server's metrics, for other components' gauges.
func (s *Server) Metrics() *Metrics { return s.metrics }
