package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/percorso/percorso/domain/access"
)

// Cookie names. The session cookie carries a random id and its HMAC, never
// the bearer token: a stolen cookie dies with the session (sign-out, expiry,
// restart) while the token it was made from stays valid for the API.
const (
	sessionCookie = "percorso_ui_session"
	csrfCookie    = "percorso_ui_csrf"
)

// Session lifetimes: a working day at most, and half an hour of idleness,
// since these pages show personal data on office desks.
const (
	defaultSessionTTL  = 8 * time.Hour
	defaultSessionIdle = 30 * time.Minute
	maxSessions        = 10000
)

type session struct {
	id        string
	principal access.Principal
	created   time.Time
	seen      time.Time
}

// sessions is the in-memory session table. Keeping sessions in memory means
// a restart signs everyone out, which is acceptable for a dashboard and
// keeps session state out of the read models. The HMAC key is random per
// process for the same reason.
type sessions struct {
	key  []byte
	ttl  time.Duration
	idle time.Duration
	now  func() time.Time

	mu sync.Mutex
	m  map[string]*session
}

func newSessions(now func() time.Time) *sessions {
	key := make([]byte, 32)
	rand.Read(key)
	return &sessions{key: key, ttl: defaultSessionTTL, idle: defaultSessionIdle, now: now, m: map[string]*session{}}
}

func (s *sessions) mac(purpose, v string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *sessions) check(purpose, v, tag string) bool {
	return v != "" && hmac.Equal([]byte(s.mac(purpose, v)), []byte(tag))
}

func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for p and returns the cookie value. Expired
// sessions are swept here, and past maxSessions the oldest are dropped, so
// the table cannot grow without bound.
func (s *sessions) create(p access.Principal) (*session, string) {
	now := s.now()
	sess := &session{id: randomID(), principal: p, created: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, old := range s.m {
		if s.expired(old, now) {
			delete(s.m, id)
		}
	}
	for len(s.m) >= maxSessions {
		var oldest *session
		for _, old := range s.m {
			if oldest == nil || old.seen.Before(oldest.seen) {
				oldest = old
			}
		}
		delete(s.m, oldest.id)
	}
	s.m[sess.id] = sess
	return sess, sess.id + "." + s.mac("session", sess.id)
}

func (s *sessions) expired(sess *session, now time.Time) bool {
	return now.Sub(sess.created) > s.ttl || now.Sub(sess.seen) > s.idle
}

// lookup returns the live session a cookie value names, refreshing its
// idle timer; nil for a forged, unknown or expired one.
func (s *sessions) lookup(value string) *session {
	id, tag, ok := strings.Cut(value, ".")
	if !ok || !s.check("session", id, tag) {
		return nil
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.m[id]
	if sess == nil {
		return nil
	}
	if s.expired(sess, now) {
		delete(s.m, id)
		return nil
	}
	sess.seen = now
	c := *sess
	return &c
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// signoutToken is the CSRF token of the sign-out form: bound to the
// session, so another site cannot sign a user out.
func (s *sessions) signoutToken(sess *session) string { return s.mac("signout", sess.id) }

func cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: prefix, MaxAge: maxAge, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode}
}

// current returns the request's session, or nil.
func (h *Handler) current(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	return h.sessions.lookup(c.Value)
}

// signinForm is what the sign-in template shows.
type signinForm struct {
	CSRF    string
	Next    string
	Message string
}

// csrfFor makes sure the browser holds a sign-in CSRF cookie and returns
// the form token that goes with it (double submit, with the token an HMAC
// of the cookie so that a cookie planted by a sibling domain is useless
// without the key).
func (h *Handler) csrfFor(w http.ResponseWriter, r *http.Request) string {
	v := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		v = c.Value
	} else {
		v = randomID()
		http.SetCookie(w, cookie(r, csrfCookie, v, 3600))
	}
	return h.sessions.mac("signin", v)
}

func (h *Handler) signinPage(w http.ResponseWriter, r *http.Request) {
	l := pickLang(w, r)
	next := safeNext(r.URL.Query().Get("next"))
	if h.current(r) != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	h.renderSignin(w, r, l, http.StatusOK, next, "")
}

func (h *Handler) renderSignin(w http.ResponseWriter, r *http.Request, l lang, status int, next, msg string) {
	form := signinForm{CSRF: h.csrfFor(w, r), Next: next}
	if msg != "" {
		form.Message = l.T(msg)
	}
	h.render(w, r, status, "signin", &page{L: l, Title: l.T("signin.title"), Body: form})
}

func (h *Handler) signin(w http.ResponseWriter, r *http.Request) {
	l := pickLang(w, r)
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		h.renderSignin(w, r, l, http.StatusBadRequest, prefix, "signin.expired")
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	c, err := r.Cookie(csrfCookie)
	if err != nil || !h.sessions.check("signin", c.Value, r.PostForm.Get("csrf")) {
		h.renderSignin(w, r, l, http.StatusForbidden, next, "signin.expired")
		return
	}
	ip := clientIP(r)
	if h.limiter.Blocked(ip, h.now()) {
		h.renderSignin(w, r, l, http.StatusTooManyRequests, next, "signin.toomany")
		return
	}
	p, err := h.auth.Authenticate(strings.TrimSpace(r.PostForm.Get("token")))
	if err != nil {
		if !h.limiter.Allow(ip, h.now()) {
			h.renderSignin(w, r, l, http.StatusTooManyRequests, next, "signin.toomany")
			return
		}
		h.renderSignin(w, r, l, http.StatusUnauthorized, next, "signin.failed")
		return
	}
	_, value := h.sessions.create(p)
	http.SetCookie(w, cookie(r, sessionCookie, value, int(h.sessions.ttl/time.Second)))
	// The sign-in token is spent: the next sign-in gets a fresh one.
	http.SetCookie(w, cookie(r, csrfCookie, "", -1))
	h.log.Info("ui sign-in", "principal", p.Name, "role", p.Role)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) signout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	sess := h.current(r)
	if err := r.ParseForm(); err != nil || sess == nil ||
		!hmac.Equal([]byte(h.sessions.signoutToken(sess)), []byte(r.PostForm.Get("csrf"))) {
		h.renderError(w, r, h.frameIfSignedIn(w, r), http.StatusForbidden, "")
		return
	}
	h.sessions.end(sess.id)
	http.SetCookie(w, cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, prefix+"signin", http.StatusSeeOther)
}

// safeNext keeps the after-sign-in redirect inside the UI: an open
// redirect on a sign-in form is a phishing tool.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.Scheme != "" || u.Host != "" || u.User != nil ||
		!strings.HasPrefix(u.Path, prefix) || strings.Contains(next, `\`) || strings.HasPrefix(next, "//") {
		return prefix
	}
	return u.RequestURI()
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
