// Package ui serves the pages supervisors read every week: the region's
// overview, an office's caseload and deadline lists, compliance, and one
// path's timeline. They show the same figures as the JSON reports, computed
// by the same query ports with the same roles, office scope and small-cell
// suppression, so a page never disagrees with the API.
//
// Everything is rendered on the server: html/template pages, charts drawn
// as inline SVG with a table behind each, one stylesheet, no script. There
// is no front-end build to install, nothing to vendor or keep patched, and
// the pages work with a screen reader, in print and under a strict Content
// Security Policy.
//
// People sign in with the same bearer tokens as the API. The token is
// checked once and exchanged for a server-side session; the cookie carries
// only a random id and its HMAC.
package ui

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/percorso/percorso/adapters/wire"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/domain/query"
)

// prefix is where the pages live; the API server mounts the handler there.
const prefix = "/ui/"

// Prefix is the path the Handler must be mounted at.
const Prefix = prefix

//go:embed templates/*.html static/*
var assets embed.FS

// ReadModels is the read side the pages need: path views, listings and
// the aggregate reports (pg.Reader is both).
type ReadModels interface {
	query.Reader
	query.Reports
}

// Handler serves the pages under /ui/.
type Handler struct {
	read     ReadModels
	auditor  query.Auditor
	reads    query.ReadLog
	auth     *access.Directory
	log      *slog.Logger
	limiter  *access.Limiter
	sessions *sessions
	now      func() time.Time
	pages    map[string]*template.Template
	mux      *http.ServeMux
	handler  http.Handler
}

// Option configures a Handler.
type Option func(*Handler)

// WithAudit enables the path page's timeline and chain verification, and
// records auditors' reads as the API does.
func WithAudit(a query.Auditor, reads query.ReadLog) Option {
	return func(h *Handler) { h.auditor, h.reads = a, reads }
}

// WithClock sets the clock sessions expire by and deadlines are dated by.
func WithClock(now func() time.Time) Option {
	return func(h *Handler) { h.now = now }
}

// WithSessionLifetime sets how long a session lasts at most and how long
// it may stay idle.
func WithSessionLifetime(ttl, idle time.Duration) Option {
	return func(h *Handler) { h.sessions.ttl, h.sessions.idle = ttl, idle }
}

// New returns the pages' handler. auth is the same directory the API
// authenticates bearer tokens with.
func New(read ReadModels, auth *access.Directory, log *slog.Logger, opts ...Option) *Handler {
	h := &Handler{read: read, auth: auth, log: log, limiter: access.NewLimiter(30), now: time.Now, mux: http.NewServeMux()}
	h.sessions = newSessions(func() time.Time { return h.now() })
	for _, o := range opts {
		o(h)
	}
	h.pages = parsePages()
	h.routes()
	// Cross-origin protection refuses a form posted from another site
	// (Sec-Fetch-Site, Origin) before the CSRF tokens are even looked at.
	h.handler = securityHeaders(http.NewCrossOriginProtection().Handler(h.mux))
	return h
}

func parsePages() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"signin", "error", "region", "office", "compliance", "path"} {
		out[name] = template.Must(template.New(name).ParseFS(assets, "templates/layout.html", "templates/parts.html", "templates/"+name+".html"))
	}
	return out
}

func (h *Handler) routes() {
	static, _ := fs.Sub(assets, "static")
	h.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET /ui/signin", h.signinPage)
	h.mux.HandleFunc("POST /ui/signin", h.signin)
	h.mux.HandleFunc("POST /ui/signout", h.signout)
	h.mux.HandleFunc("GET /ui/{$}", h.page(func(*req) (*result, error) {
		return nil, errRedirect(prefix + "region")
	}))
	h.mux.HandleFunc("GET /ui/region", h.page(h.region))
	h.mux.HandleFunc("GET /ui/region.csv", h.csv(h.region))
	h.mux.HandleFunc("GET /ui/office", h.page(h.office))
	h.mux.HandleFunc("GET /ui/office.csv", h.csv(h.office))
	h.mux.HandleFunc("GET /ui/compliance", h.page(h.compliance))
	h.mux.HandleFunc("GET /ui/compliance.csv", h.csv(h.compliance))
	h.mux.HandleFunc("GET /ui/paths/{path_id}", h.page(h.path))
	h.mux.HandleFunc("GET /ui/paths/{path_id}/export.csv", h.csv(h.path))
	h.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, r, h.frameIfSignedIn(w, r), http.StatusNotFound, "")
	})
}

// ServeHTTP serves the pages.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.handler.ServeHTTP(w, r) }

// securityHeaders: the pages show personal data, so nothing is cached,
// framed, or sent as a Referer (path ids are in URLs); the policy allows
// only the UI's own stylesheet, which is all the pages use.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// req is one signed-in request.
type req struct {
	r    *http.Request
	p    access.Principal
	l    lang
	sess *session
	csv  bool
}

func (q *req) ctx() context.Context { return q.r.Context() }
func (q *req) get(name string) string {
	return strings.TrimSpace(q.r.URL.Query().Get(name))
}

// result is a built page: the template and its data for HTML, the tables
// for CSV.
type result struct {
	template string
	title    string
	body     any
	tables   []*table
}

func (res *result) table(id string) *table {
	for _, t := range res.tables {
		if t.ID == id {
			return t
		}
	}
	return nil
}

type redirect string

func (r redirect) Error() string  { return "redirect to " + string(r) }
func errRedirect(to string) error { return redirect(to) }

// page is what the layout template renders.
type page struct {
	L         lang
	Title     string
	Principal *access.Principal
	Scope     string
	Nav       []navItem
	Signout   string
	LangHref  string
	Body      any
	Status    int
	Message   string
}

type navItem struct {
	Href, Label string
	Current     bool
}

// authenticate returns the signed-in request, or sends the browser to
// the sign-in form and returns nil.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, csv bool) *req {
	l := pickLang(w, r)
	sess := h.current(r)
	if sess == nil {
		http.Redirect(w, r, prefix+"signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return nil
	}
	return &req{r: r, p: sess.principal, l: l, sess: sess, csv: csv}
}

func (h *Handler) page(build func(*req) (*result, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := h.authenticate(w, r, false)
		if q == nil {
			return
		}
		pg := h.frame(q)
		res, err := build(q)
		if err != nil {
			h.failPage(w, r, pg, err)
			return
		}
		pg.Title, pg.Body = res.title, res.body
		h.render(w, r, http.StatusOK, res.template, pg)
	}
}

func (h *Handler) csv(build func(*req) (*result, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := h.authenticate(w, r, true)
		if q == nil {
			return
		}
		res, err := build(q)
		if err != nil {
			h.failPage(w, r, h.frame(q), err)
			return
		}
		t := res.table(q.get("table"))
		if t == nil {
			h.renderError(w, r, h.frame(q), http.StatusNotFound, "")
			return
		}
		writeCSV(w, t)
	}
}

// frame fills what every signed-in page shows: who, where, and the menu
// the role can use.
func (h *Handler) frame(q *req) *page {
	p := q.p
	pg := &page{L: q.l, Principal: &p, Signout: h.sessions.signoutToken(q.sess)}
	if scope := p.OfficeScope(); scope == nil {
		pg.Scope = q.l.T("scope.region")
	} else {
		pg.Scope = q.l.T("scope.offices") + ": " + strings.Join(scope, ", ")
	}
	path := q.r.URL.Path
	add := func(href, label string) {
		pg.Nav = append(pg.Nav, navItem{Href: href, Label: q.l.T(label), Current: path == href})
	}
	if p.Authorize(access.ActReport, firstOffice(p)) == nil {
		add(prefix+"region", "nav.region")
	}
	if p.SeesPersonalData() && p.Authorize(access.ActReadPath, firstOffice(p)) == nil {
		add(prefix+"office", "nav.office")
	}
	if p.Authorize(access.ActReport, firstOffice(p)) == nil {
		add(prefix+"compliance", "nav.compliance")
	}
	pg.LangHref = langHref(q.r, q.l)
	return pg
}

// langHref is the current page in the other language.
func langHref(r *http.Request, l lang) string {
	other := langEN
	if l == langEN {
		other = langIT
	}
	u := *r.URL
	v := u.Query()
	v.Set("lang", string(other))
	u.RawQuery = v.Encode()
	return u.RequestURI()
}

// frameIfSignedIn is the frame of a page that anyone may reach, such as
// an error: with the menu when the browser is signed in.
func (h *Handler) frameIfSignedIn(w http.ResponseWriter, r *http.Request) *page {
	l := pickLang(w, r)
	if sess := h.current(r); sess != nil {
		return h.frame(&req{r: r, p: sess.principal, l: l, sess: sess})
	}
	return &page{L: l}
}

func firstOffice(p access.Principal) string {
	if s := p.OfficeScope(); len(s) > 0 {
		return s[0]
	}
	return ""
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, pg *page) {
	t := h.pages[name]
	if pg.LangHref == "" {
		pg.LangHref = langHref(r, pg.L)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", pg); err != nil {
		h.log.Error("rendering a page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

// failPage answers an error as a page with the API's status for it.
func (h *Handler) failPage(w http.ResponseWriter, r *http.Request, pg *page, err error) {
	var to redirect
	if errors.As(err, &to) {
		http.Redirect(w, r, string(to), http.StatusSeeOther)
		return
	}
	if errors.Is(err, query.ErrNotFound) {
		err = fault.New(fault.NotFound, fault.CodePathNotFound, "path not found")
	}
	var fe *fault.Error
	if !errors.As(err, &fe) {
		fe = &fault.Error{Kind: fault.Unavailable, Code: fault.CodeUnavailable, Message: "read models unavailable", Err: err}
	}
	status := wire.Status(fe.Kind)
	if status >= 500 {
		h.log.Error("ui page failed", "route", r.Pattern, "status", status, "code", fe.Code, "err", fe.Err)
	}
	h.renderError(w, r, pg, status, fe.Message)
}

func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, pg *page, status int, detail string) {
	pg.Status = status
	pg.Title = pg.L.T("error.title")
	msg := pg.L.T("error." + itoa(status))
	if strings.HasPrefix(msg, "error.") {
		msg = pg.L.T("error.500")
	}
	pg.Message = msg
	pg.Body = detail
	h.render(w, r, status, "error", pg)
}

// officeChoices are the offices a principal may pick in a filter.
func officeChoices(p access.Principal) []office.Office {
	scope := p.OfficeScope()
	if scope == nil {
		return office.All()
	}
	var out []office.Office
	for _, c := range scope {
		if o, ok := office.Lookup(c); ok {
			out = append(out, o)
		}
	}
	return out
}

// recordRead keeps auditors' reads, as the API does; a failure is logged
// and does not refuse the page.
func (h *Handler) recordRead(q *req, action, id string) {
	if !q.p.ReadsAudited() || h.reads == nil {
		return
	}
	if err := h.reads.RecordRead(q.ctx(), query.AuditRead{At: time.Now().UTC(), Principal: q.p.Name, Action: action, PathID: id}); err != nil {
		h.log.Error("recording an auditor's read", "principal", q.p.Name, "action", action, "err", err)
	}
}

func itoa(n int) string {
	return strconv.Itoa(n)
}

// csvHref links to the CSV of one table of the current page, with the
// page's filters.
func csvHref(r *http.Request, path, tableID string) string {
	v := r.URL.Query()
	v.Del("lang")
	v.Set("table", tableID)
	return path + "?" + v.Encode()
}
