package access

import (
	"sync"
	"time"
)

// Limiter counts failed authentications per client key (a remote address)
// so that the edges can answer 429 to a client that keeps guessing. Tokens
// are 256-bit random strings and cannot be guessed; the point is to keep a
// misconfigured script or a scanner from flooding the logs and the CPU.
//
// Each key has a bucket of perMinute failures that refills continuously, so
// a key that stays quiet for a minute is back to a full budget and can be
// forgotten. An edge uses it as:
//
//	if lim.Blocked(ip, now) { 429 }
//	p, err := dir.Authenticate(token)
//	if err != nil { if !lim.Allow(ip, now) { 429 } else { 401 } }
//
// Only failures count, because a whole office usually reaches the server
// from one address and its successful calls must never be throttled.
//
// Memory is bounded: keys live in two generations that rotate every minute
// (no information is lost, since a key untouched for a minute is full) or
// earlier, when the current one fills up under a flood of addresses.
type Limiter struct {
	mu        sync.Mutex
	burst     float64
	perSecond float64
	maxGen    int
	rotatedAt time.Time
	cur, prev map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// LimiterOption configures a Limiter.
type LimiterOption func(*Limiter)

// WithMaxKeys bounds how many client keys the limiter remembers (default
// 10000). Under a flood of distinct keys the oldest are forgotten first.
func WithMaxKeys(n int) LimiterOption {
	return func(l *Limiter) {
		l.maxGen = max(n/2, 1)
	}
}

// NewLimiter returns a Limiter allowing perMinute failed authentications
// per key per minute; values below 1 are taken as 1.
func NewLimiter(perMinute int, opts ...LimiterOption) *Limiter {
	perMinute = max(perMinute, 1)
	l := &Limiter{
		burst:     float64(perMinute),
		perSecond: float64(perMinute) / 60,
		maxGen:    5000,
		cur:       map[string]*bucket{},
		prev:      map[string]*bucket{},
	}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Allow records one failed authentication for key at now and reports
// whether key is still within its budget; false means answer 429.
func (l *Limiter) Allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now, true)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Blocked reports, without recording anything, whether key has used up its
// budget, so that a blocked client is refused before its token is checked.
func (l *Limiter) Blocked(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now, false)
	return b != nil && b.tokens < 1
}

// Len returns how many client keys the limiter currently remembers.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.cur) + len(l.prev)
}

// bucket returns key's bucket refilled up to now, moving it to the current
// generation; it creates one only if create is set.
func (l *Limiter) bucket(key string, now time.Time, create bool) *bucket {
	l.rotate(now)
	b, ok := l.cur[key]
	if !ok {
		if b, ok = l.prev[key]; ok {
			delete(l.prev, key)
		} else if !create {
			return nil
		} else {
			b = &bucket{tokens: l.burst, last: now}
		}
		if len(l.cur) >= l.maxGen {
			l.prev, l.cur = l.cur, map[string]*bucket{}
			l.rotatedAt = now
		}
		l.cur[key] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed.Seconds()*l.perSecond)
		b.last = now
	}
	return b
}

// rotate drops the keys nobody has touched for at least a minute.
func (l *Limiter) rotate(now time.Time) {
	switch age := now.Sub(l.rotatedAt); {
	case age >= 2*time.Minute:
		clear(l.prev)
		clear(l.cur)
		l.rotatedAt = now
	case age >= time.Minute:
		l.prev, l.cur = l.cur, l.prev
		clear(l.cur)
		l.rotatedAt = now
	}
}
