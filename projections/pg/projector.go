package pg

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
)

// ProjectorName names the read-model projection's checkpoint. A partition's
// checkpoint is named after it: read_models/0of2, read_models/1of2.
const ProjectorName = "read_models"

// Item is one event to project: its envelope and decoded domain event. An
// item of another partition has a nil Event: it only moves the checkpoint,
// so that every partition's checkpoint follows the whole stream.
type Item struct {
	Env   *eventstore.Envelope
	Event workerpath.Event
}

// Projector applies events to the read models.
type Projector struct {
	pool *pgxpool.Pool
	name string
	part Partition

	applying sync.Mutex // held while a batch is applied
	static   staticCache

	mu          sync.Mutex
	known       uint64 // its own checkpoint row as last read or committed
	deferTotals bool   // sessions do not update their path's row (see Rebuild)
}

// NewProjector returns a projector of the whole stream writing through pool.
func NewProjector(pool *pgxpool.Pool) *Projector { return NewPartitionProjector(pool, Partition{}) }

// NewPartitionProjector returns a projector of one partition of the paths.
func NewPartitionProjector(pool *pgxpool.Pool, part Partition) *Projector {
	return &Projector{pool: pool, name: part.checkpointName(), part: part}
}

// Partition is the share of the paths this projector applies.
func (p *Projector) Partition() Partition { return p.part }

// Name is the projector's checkpoint name.
func (p *Projector) Name() string { return p.name }

// ErrCheckpointMoved: the projector's checkpoint row is behind what the
// projector itself committed — the read models were switched by a rebuild,
// or reset. The runner resumes from the checkpoint it finds.
var ErrCheckpointMoved = errors.New("pg: the checkpoint moved back under the projector")

// ErrOverlap: another projector applied one of these events at the same
// time (two layouts of partitions running at once). Nothing was written;
// the retry skips what the other one applied.
var ErrOverlap = errors.New("pg: another projector applied the same events")

// Checkpoint is the stream sequence up to which every event of this
// projector's partition is applied (0: none). That is its own checkpoint,
// or further on when another layout of partitions (the whole stream after a
// rebuild, or n partitions before a change to m) has gone further for
// every path.
func (p *Projector) Checkpoint(ctx context.Context) (uint64, error) {
	rows, err := p.pool.Query(ctx, `SELECT name, seq FROM projection_checkpoints WHERE name = $1 OR starts_with(name, $1 || '/')`, ProjectorName)
	if err != nil {
		return 0, err
	}
	seqs := map[string]uint64{}
	var name string
	var seq int64
	if _, err := pgx.ForEachRow(rows, []any{&name, &seq}, func() error { seqs[name] = uint64(seq); return nil }); err != nil {
		return 0, err
	}
	own, floor := p.position(seqs)
	p.mu.Lock()
	p.known = own
	p.mu.Unlock()
	return max(own, floor), nil
}

// position reads the checkpoints of the projection: this projector's own,
// and the highest sequence up to which another layout has applied every
// path — the lowest checkpoint of a layout whose partitions all have one.
// The other partitions of this layout say nothing about this one's paths.
func (p *Projector) position(seqs map[string]uint64) (own, floor uint64) {
	layouts := map[int]map[int]uint64{}
	for name, seq := range seqs {
		part, ok := checkpointPartition(name)
		if !ok || part.count() == p.part.count() {
			continue
		}
		if layouts[part.count()] == nil {
			layouts[part.count()] = map[int]uint64{}
		}
		layouts[part.count()][part.Index] = seq
	}
	for n, parts := range layouts {
		if len(parts) != n {
			continue
		}
		low := uint64(math.MaxUint64)
		for _, seq := range parts {
			low = min(low, seq)
		}
		floor = max(floor, low)
	}
	return seqs[p.name], floor
}

// Apply applies a batch in one transaction together with the checkpoint.
// Events at or below the checkpoint are skipped, and so are events already
// in audit_events (applied by another layout of partitions), so a
// redelivered batch changes nothing: each event takes effect exactly once.
func (p *Projector) Apply(ctx context.Context, items []Item) error {
	if len(items) == 0 {
		return nil
	}
	err := p.apply(ctx, items)
	// Another projector committed first (a second copy of this partition
	// during a rolling update, or another layout): a fresh snapshot skips
	// what it applied. Retried here a few times, then by the runner.
	for try := 0; try < 3 && overlapped(err); try++ {
		err = p.apply(ctx, items)
	}
	var poison *PoisonError
	if errors.As(err, &poison) && len(items) > 1 {
		// An event the fold refuses: the batch's events before it still
		// take effect, and it alone is poison.
		for i, it := range items {
			if it.Env.Seq == poison.Seq {
				if err := p.Apply(ctx, items[:i]); err != nil {
					return err
				}
				return poison
			}
		}
		return err
	}
	if overlapped(err) {
		return fmt.Errorf("%w: %v", ErrOverlap, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && permanent(pgErr.Code) {
		// Find the one event the database refuses: alone, it is poison.
		if len(items) == 1 {
			return &PoisonError{Seq: items[0].Env.Seq, Err: err}
		}
		for _, it := range items {
			if err := p.Apply(ctx, []Item{it}); err != nil {
				return err
			}
		}
		return nil
	}
	return err
}

// overlapped: the batch lost a race with another projector's commit — an
// event it also applied (the audit row's key), or a row it read changed
// since the batch's snapshot (serialization failure, deadlock).
func overlapped(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "23505" && pgErr.ConstraintName == "audit_events_pkey" ||
		pgErr.Code == "40001" || pgErr.Code == "40P01"
}

// permanent: SQLSTATE classes an event's data can cause and no retry can
// fix — data exceptions and integrity violations. Class 42 (a missing
// table or column, a privilege revoked) is the database's set-up, not the
// event's: it is retried until someone mends it, never blamed on whichever
// event came first.
func permanent(code string) bool {
	return strings.HasPrefix(code, "22") || strings.HasPrefix(code, "23")
}

func (p *Projector) apply(ctx context.Context, items []Item) error {
	p.applying.Lock()
	defer p.applying.Unlock()
	p.mu.Lock()
	known, deferTotals := p.known, p.deferTotals
	p.mu.Unlock()
	var committed uint64
	var taken map[string]pathStatic
	// One snapshot for every read of the batch: under READ COMMITTED the
	// applied sequences and the paths rows could be read on either side of
	// another layout's commit, and the fold would see a path already taken
	// in charge by an event it believes unapplied. Under REPEATABLE READ a
	// row another projector changed since the snapshot fails the write
	// with a serialization error instead, and the batch is retried.
	err := pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		st, err := readState(ctx, tx, p.name, items, deferTotals, &p.static)
		if err != nil {
			return err
		}
		own, floor := p.position(st.checkpoints)
		if own < known {
			return fmt.Errorf("%w: %s is at %d, the projector committed %d", ErrCheckpointMoved, p.name, own, known)
		}
		cp := max(own, floor)
		committed = own
		f := &fold{paths: st.paths, static: st.static, dirty: map[string]bool{}, deferTotals: deferTotals}
		last := cp
		for _, it := range items {
			if it.Env.Seq <= last {
				continue
			}
			if it.Event != nil && !st.applied[it.Env.Seq] {
				if err := f.add(it); err != nil {
					return err
				}
			}
			last = it.Env.Seq
		}
		if last == cp {
			return nil
		}
		b := &pgx.Batch{}
		if err := f.write(ctx, tx, b); err != nil {
			return err
		}
		b.Queue(`INSERT INTO projection_checkpoints (name, seq, updated_at) VALUES ($1, $2, now())
			ON CONFLICT (name) DO UPDATE SET seq = EXCLUDED.seq, updated_at = now()`, p.name, int64(last))
		committed = last
		if deferTotals {
			// Only a replay deferring totals reads the cache (readState).
			taken = maps.Clone(f.static)
			for id, r := range f.paths {
				taken[id] = r.static()
			}
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err == nil {
		p.mu.Lock()
		p.known = max(p.known, committed)
		p.mu.Unlock()
		p.static.put(taken)
	}
	return err
}

// PoisonError marks an event that cannot be applied (as opposed to a
// database that is away for a while).
type PoisonError struct {
	Seq uint64
	Err error
}

func (e *PoisonError) Error() string {
	return fmt.Sprintf("event %d cannot be applied: %v", e.Seq, e.Err)
}
func (e *PoisonError) Unwrap() error { return e.Err }

func province(code string) string {
	if o, ok := office.Lookup(code); ok {
		return o.Province
	}
	return ""
}

// Partition is one of Count disjoint shares of the paths. A path belongs to
// partition FNV-1a(path id) mod Count, the hash of NATS's partition(n, ...)
// subject-mapping function, so a deployment may split the stream with
// subject mappings instead and land every path in the same partition.
//
// Every row a projector writes belongs to one path — its paths row, its
// sessions, its audit events — so partitions never write the same row, and
// each path's events keep their stream order within its partition. Only the
// checkpoints are per partition. The zero value is the whole stream.
type Partition struct {
	Index, Count int
}

// MaxPartitions bounds Count: each partition reads the whole stream, so
// past a few dozen the reading costs more than the writing saves.
const MaxPartitions = 64

// ParsePartition reads "i/n" (0 <= i < n).
func ParsePartition(s string) (Partition, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || n > MaxPartitions || i < 0 || i >= n {
		return Partition{}, fmt.Errorf("partition %q: want i/n with 0 <= i < n <= %d", s, MaxPartitions)
	}
	return Partition{Index: i, Count: n}, nil
}

func (p Partition) count() int { return max(p.Count, 1) }

// String is "i/n".
func (p Partition) String() string { return fmt.Sprintf("%d/%d", p.Index, p.count()) }

// Owns reports whether the path's events belong to this partition.
func (p Partition) Owns(pathID string) bool {
	return p.count() == 1 || PartitionOf(pathID, p.count()) == p.Index
}

// PartitionOf is the partition of n a path belongs to.
func PartitionOf(pathID string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(pathID))
	return int(h.Sum32() % uint32(n))
}

func (p Partition) checkpointName() string {
	if p.count() == 1 {
		return ProjectorName
	}
	return fmt.Sprintf("%s/%dof%d", ProjectorName, p.Index, p.Count)
}

func checkpointPartition(name string) (Partition, bool) {
	if name == ProjectorName {
		return Partition{Index: 0, Count: 1}, true
	}
	rest, ok := strings.CutPrefix(name, ProjectorName+"/")
	if !ok {
		return Partition{}, false
	}
	a, b, ok := strings.Cut(rest, "of")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Partition{}, false
	}
	return Partition{Index: i, Count: n}, true
}

// Admin is the projection as admins see it, whatever the partitions: the
// poison events of every partition, and skips by sequence whichever
// partition recorded the event (each event belongs to exactly one).
type Admin struct{ *Projector }

// NewAdmin returns the admin view of the read-model projection.
func NewAdmin(pool *pgxpool.Pool) Admin { return Admin{NewProjector(pool)} }

// Skip marks a recorded, unskipped poison event skipped, by whom and when;
// the partition waiting on it then moves past it.
func (a Admin) Skip(ctx context.Context, seq uint64, by string) error {
	tag, err := a.pool.Exec(ctx, `UPDATE projection_poison SET skipped_at = now(), skipped_by = $3
		WHERE (name = $1 OR starts_with(name, $1 || '/')) AND seq = $2 AND skipped_at IS NULL`, ProjectorName, int64(seq), by)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return query.ErrNotFound
	}
	return nil
}
