package pg

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
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

	mu    sync.Mutex
	known uint64 // its own checkpoint row as last read or committed
	floor uint64 // every event up to here is applied, by another layout of partitions
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
	p.known, p.floor = own, floor
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
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "audit_events_pkey" {
		return fmt.Errorf("%w: %v", ErrOverlap, err)
	}
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

// permanent: SQLSTATE classes no retry can fix (data exceptions, integrity
// violations, syntax or access rule violations).
func permanent(code string) bool {
	return strings.HasPrefix(code, "22") || strings.HasPrefix(code, "23") || strings.HasPrefix(code, "42")
}

func (p *Projector) apply(ctx context.Context, items []Item) error {
	p.mu.Lock()
	known, floor := p.known, p.floor
	p.mu.Unlock()
	var committed uint64
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var own int64
		err := tx.QueryRow(ctx, `SELECT seq FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, p.name).Scan(&own)
		if err != nil && err != pgx.ErrNoRows {
			return err
		}
		if uint64(own) < known {
			return fmt.Errorf("%w: %s is at %d, the projector committed %d", ErrCheckpointMoved, p.name, own, known)
		}
		cp := max(uint64(own), floor)
		committed = uint64(own)
		applied, err := alreadyApplied(ctx, tx, items, cp)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		last := cp
		for _, it := range items {
			if it.Env.Seq <= last {
				continue
			}
			if it.Event != nil && !applied[it.Env.Seq] {
				if err := queue(b, it); err != nil {
					return err
				}
			}
			last = it.Env.Seq
		}
		if last == cp {
			return nil
		}
		b.Queue(`INSERT INTO projection_checkpoints (name, seq, updated_at) VALUES ($1, $2, now())
			ON CONFLICT (name) DO UPDATE SET seq = EXCLUDED.seq, updated_at = now()`, p.name, int64(last))
		committed = last
		return tx.SendBatch(ctx, b).Close()
	})
	if err == nil {
		p.mu.Lock()
		p.known = max(p.known, committed)
		p.mu.Unlock()
	}
	return err
}

// alreadyApplied finds the batch's events past cp that audit_events already
// holds: every applied event has its row there, written in the same
// transaction as its other effects.
func alreadyApplied(ctx context.Context, tx pgx.Tx, items []Item, cp uint64) (map[uint64]bool, error) {
	var seqs []int64
	for _, it := range items {
		if it.Event != nil && it.Env.Seq > cp {
			seqs = append(seqs, int64(it.Env.Seq))
		}
	}
	if len(seqs) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT seq FROM audit_events WHERE seq = ANY($1)`, seqs)
	if err != nil {
		return nil, err
	}
	applied := map[uint64]bool{}
	var seq int64
	_, err = pgx.ForEachRow(rows, []any{&seq}, func() error { applied[uint64(seq)] = true; return nil })
	return applied, err
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

func queue(b *pgx.Batch, it Item) error {
	env := it.Env
	seq := int64(env.Seq)
	b.Queue(`INSERT INTO audit_events (seq, event_id, path_id, type, schema_version, recorded_at, actor, command_id, correlation_id, hash, prev_hash, data)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
		seq, env.ID, env.PathID, env.Type, env.SchemaVersion, env.Time, env.Actor, env.CommandID, env.CorrelationID, env.Hash, env.PrevHash, string(env.Data))
	switch e := it.Event.(type) {
	case *workerpath.TakenInCharge:
		w := e.Worker
		var birth any
		if !w.BirthDate.IsZero() {
			birth = w.BirthDate.Time()
		}
		var to any
		if !e.Support.To.IsZero() {
			to = e.Support.To.Time()
		}
		var tax, given, family, lang any
		var disability any
		if !w.Erased {
			tax, given, family, lang, disability = w.TaxCode, w.GivenName, w.FamilyName, nullIfEmpty(w.MediatorLanguage), w.Disability
		}
		b.Queue(`INSERT INTO paths (path_id, worker_ref, tax_code, given_name, family_name, birth_date, disability, mediator_language, erased,
			category, support_kind, agreement_code, support_from, support_to, office, province, status, taken_at, version)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,'open',$17,$18)`,
			e.PathID, e.WorkerRef, tax, given, family, birth, disability, lang, w.Erased,
			e.Category, e.Support.Kind, nullIfEmpty(e.Support.AgreementCode), e.Support.From.Time(), to, e.Office, province(e.Office), e.TakenAt, seq)
	case *workerpath.SessionDelivered:
		var group any
		if e.GroupID != "" {
			group = e.GroupID
		}
		b.Queue(`INSERT INTO sessions (event_id, seq, path_id, session_id, service, delivered_at, office, province, category, worker_ref, operator,
			standard_minutes, credited_minutes, actual_minutes, mediator_present, group_id, group_size, outside_group_range, justification,
			outside_support, traineeship_id, catalogue_version)
			SELECT $1,$2,$3,$4,$5,$6,p.office,p.province,p.category,p.worker_ref,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18
			FROM paths p WHERE p.path_id = $3`,
			env.ID, seq, e.PathID, nullIfEmpty(e.SessionID), e.Service, e.DeliveredAt, e.Operator, e.StandardMinutes, e.CreditedMinutes,
			e.ActualMinutes, e.MediatorPresent, group, nullIfZero(e.GroupSize), e.OutsideGroupRange, nullIfEmpty(e.Justification),
			e.OutsideSupport, nullIfEmpty(e.TraineeshipID), e.CatalogueVersion)
		key := strconv.Itoa(e.Service)
		b.Queue(`UPDATE paths SET services = jsonb_set(services, ARRAY[$2::text], jsonb_build_object(
				'delivered', COALESCE((services->$2->>'delivered')::int, 0) + 1,
				'credited_minutes', COALESCE((services->$2->>'credited_minutes')::int, 0) + $3::int)),
			credited_minutes_total = credited_minutes_total + $3::int, version = $4 WHERE path_id = $1`,
			e.PathID, key, e.CreditedMinutes, seq)
	case *workerpath.PactSigned:
		b.Queue(`UPDATE paths SET pact_signed_at = $2, did_on = $3, version = $4 WHERE path_id = $1`, e.PathID, e.SignedAt, e.DIDOn.Time(), seq)
	case *workerpath.TraineeshipActivated:
		b.Queue(`UPDATE paths SET version = $2 WHERE path_id = $1`, e.PathID, seq)
	case *workerpath.PathVerified:
		b.Queue(`UPDATE paths SET verified_at = $2, verification_outcome = $3, version = $4 WHERE path_id = $1`, e.PathID, e.VerifiedAt, e.Outcome, seq)
	case *workerpath.NoShowRecorded:
		if e.Justified {
			b.Queue(`UPDATE paths SET justified_absences = justified_absences + 1, version = $2 WHERE path_id = $1`, e.PathID, seq)
		} else {
			b.Queue(`UPDATE paths SET unjustified_no_shows = $2, version = $3 WHERE path_id = $1`, e.PathID, e.Unjustified, seq)
		}
	case *workerpath.RefusalReported:
		b.Queue(`UPDATE paths SET refusals = refusals + 1, version = $2 WHERE path_id = $1`, e.PathID, seq)
	case *workerpath.PathClosed:
		b.Queue(`UPDATE paths SET status = 'closed', closed_at = $2, close_reason = $3, version = $4 WHERE path_id = $1`, e.PathID, e.ClosedAt, e.Reason, seq)
	case *workerpath.PersonalDataErased:
		b.Queue(`UPDATE paths SET tax_code = NULL, given_name = NULL, family_name = NULL, birth_date = NULL, disability = NULL,
			mediator_language = NULL, erased = true, version = $2 WHERE path_id = $1`, e.PathID, seq)
	default:
		return &PoisonError{Seq: env.Seq, Err: fmt.Errorf("no projection for event type %T", it.Event)}
	}
	return nil
}

func province(code string) string {
	if o, ok := office.Lookup(code); ok {
		return o.Province
	}
	return ""
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullIfZero(n int) any {
	if n == 0 {
		return nil
	}
	return n
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
