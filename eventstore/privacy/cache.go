package privacy

import (
	"container/list"
	"sync"
	"time"
)

// keyCache is a small LRU of unwrapped data keys, so that sealing and opening
// the fields of a busy worker costs no round trip to the key store.
//
// It also remembers erasures. They are final, so an erased entry never
// expires, and it stops a DataKey that raced with Destroy from caching the key
// it fetched just before the tombstone went in. Live keys expire after ttl
// because another process may destroy them: the cache bounds how long this
// process can go on using a key erased elsewhere.
type keyCache struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	now   func() time.Time
	order *list.List // front = most recently used
	items map[string]*list.Element
}

type cacheEntry struct {
	ref     string
	key     []byte // nil when erased
	erased  bool
	expires time.Time
}

func newKeyCache(max int, ttl time.Duration, now func() time.Time) *keyCache {
	return &keyCache{max: max, ttl: ttl, now: now, order: list.New(), items: map[string]*list.Element{}}
}

// get returns a copy of the cached key, or erased, or ok=false on a miss.
func (c *keyCache) get(ref string) (key []byte, erased, ok bool) {
	if c.max <= 0 {
		return nil, false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, found := c.items[ref]
	if !found {
		return nil, false, false
	}
	e := el.Value.(*cacheEntry)
	if e.erased {
		c.order.MoveToFront(el)
		return nil, true, true
	}
	if c.ttl > 0 && !c.now().Before(e.expires) {
		c.remove(el)
		return nil, false, false
	}
	c.order.MoveToFront(el)
	return clone(e.key), false, true
}

// putKey caches key unless the ref is known to be erased.
func (c *keyCache) putKey(ref string, key []byte) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, found := c.items[ref]; found {
		e := el.Value.(*cacheEntry)
		if e.erased {
			return
		}
		clear(e.key)
		e.key = clone(key)
		e.expires = c.now().Add(c.ttl)
		c.order.MoveToFront(el)
		return
	}
	c.insert(&cacheEntry{ref: ref, key: clone(key), expires: c.now().Add(c.ttl)})
}

// putErased replaces any cached key with an erasure mark, wiping the key.
func (c *keyCache) putErased(ref string) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, found := c.items[ref]; found {
		e := el.Value.(*cacheEntry)
		clear(e.key)
		e.key, e.erased = nil, true
		c.order.MoveToFront(el)
		return
	}
	c.insert(&cacheEntry{ref: ref, erased: true})
}

func (c *keyCache) insert(e *cacheEntry) {
	c.items[e.ref] = c.order.PushFront(e)
	for c.order.Len() > c.max {
		c.remove(c.order.Back())
	}
}

func (c *keyCache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	clear(e.key)
	c.order.Remove(el)
	delete(c.items, e.ref)
}

func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
