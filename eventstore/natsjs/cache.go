package natsjs

import (
	"container/list"
	"sync"

	"github.com/percorso/percorso/domain/command"
)

// pathCache keeps recently used paths in memory, keyed by path id and
// carrying the sequence they were read at. A stale entry is harmless: the
// append's expectation fails, and the command layer reloads fresh.
type pathCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[string]*list.Element
}

type cachedPath struct {
	hist     *command.History
	lastHash string
	// baseWorker is the sealed personal data of hist.Base (a snapshot),
	// whose Worker is kept empty: the cache holds nothing personal in clear.
	baseWorker string
}

type cacheItem struct {
	id string
	cp *cachedPath
}

func newPathCache(max int) *pathCache {
	return &pathCache{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *pathCache) get(id string) *cachedPath {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		c.ll.MoveToFront(el)
		return el.Value.(*cacheItem).cp
	}
	return nil
}

func (c *pathCache) put(id string, cp *cachedPath) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		if el.Value.(*cacheItem).cp.hist.Version > cp.hist.Version {
			return // a newer copy is already here
		}
		el.Value.(*cacheItem).cp = cp
		c.ll.MoveToFront(el)
		return
	}
	c.items[id] = c.ll.PushFront(&cacheItem{id: id, cp: cp})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*cacheItem).id)
	}
}

// extend adds freshly appended events to a cached path that was at
// `from`; if the cache holds another version, the entry is dropped.
func (c *pathCache) extend(id string, from uint64, recs []command.Recorded, head string) {
	if len(recs) == 0 {
		return
	}
	cur := c.get(id)
	next := &cachedPath{hist: &command.History{PathID: id}, lastHash: head}
	switch {
	case from == 0:
	case cur != nil && cur.hist.Version == from:
		next.hist.Events = cur.hist.Events[:len(cur.hist.Events):len(cur.hist.Events)]
		next.hist.Base, next.hist.BaseCommands, next.baseWorker = cur.hist.Base, cur.hist.BaseCommands, cur.baseWorker
	default:
		c.drop(id)
		return
	}
	next.hist.Events = append(next.hist.Events, recs...)
	next.hist.Version = recs[len(recs)-1].Seq
	c.put(id, next)
}

func (c *pathCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		c.ll.Remove(el)
		delete(c.items, id)
	}
}
