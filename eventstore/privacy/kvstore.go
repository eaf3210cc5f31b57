package privacy

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucket is the KV bucket that holds the wrapped data keys.
const DefaultBucket = "PERCORSO_KEYS"

const (
	defaultCacheSize = 4096
	defaultCacheTTL  = time.Minute

	// wrapVersion leads every stored key so that a later key-encryption key
	// (rotation) can be told apart from this one.
	wrapVersion = 1
	nonceSize   = 12
	wrappedSize = 1 + nonceSize + DataKeySize + 16

	// keyHistory is two so that a tombstone can land while the key it
	// replaces is still there, to be overwritten afterwards (see Destroy).
	keyHistory = 2

	// maxAttempts bounds the retries when creators and destroyers of the same
	// key interleave; each retry means another writer made progress.
	maxAttempts = 8
	// maxRevisions covers the deepest history a KV bucket can keep (64), in
	// case the bucket was created with a longer history.
	maxRevisions = 65
)

// tombstone replaces a destroyed key. It is an ordinary value, not a KV
// delete marker, because kv.Create writes over a delete marker.
var tombstone = []byte("erased")

// JetStreamOption configures a JetStreamKeyStore.
type JetStreamOption func(*jetStreamOptions)

type jetStreamOptions struct {
	bucket    string
	replicas  int
	cacheSize int
	cacheTTL  time.Duration
	now       func() time.Time
}

// WithBucket names the KV bucket (default PERCORSO_KEYS).
func WithBucket(name string) JetStreamOption {
	return func(o *jetStreamOptions) { o.bucket = name }
}

// WithReplicas sets the replicas of the bucket when this store creates it
// (default 1). An existing bucket keeps its own setting.
func WithReplicas(n int) JetStreamOption {
	return func(o *jetStreamOptions) { o.replicas = n }
}

// WithCacheSize bounds the in-process cache of unwrapped keys (default 4096
// workers); 0 disables it.
func WithCacheSize(n int) JetStreamOption {
	return func(o *jetStreamOptions) { o.cacheSize = n }
}

// WithCacheTTL sets how long a cached key is used before it is read again
// (default one minute). It is the longest this process may keep sealing and
// opening with a key that another process has destroyed.
func WithCacheTTL(d time.Duration) JetStreamOption {
	return func(o *jetStreamOptions) { o.cacheTTL = d }
}

// WithClock injects the clock that ages cache entries.
func WithClock(now func() time.Time) JetStreamOption {
	return func(o *jetStreamOptions) { o.now = now }
}

// JetStreamKeyStore keeps data keys in a JetStream KV bucket, wrapped with a
// key-encryption key derived from the master key.
type JetStreamKeyStore struct {
	kv      jetstream.KeyValue
	stream  jetstream.Stream
	subject string // KV subject prefix, "$KV.<bucket>."
	kek     cipher.AEAD
	cache   *keyCache
}

// NewJetStreamKeyStore binds to the bucket, creating it if missing. The
// master key is required because the store wraps and unwraps the keys itself:
// the bucket never holds a usable key.
func NewJetStreamKeyStore(ctx context.Context, js jetstream.JetStream, master []byte, opts ...JetStreamOption) (*JetStreamKeyStore, error) {
	o := jetStreamOptions{
		bucket:    DefaultBucket,
		replicas:  1,
		cacheSize: defaultCacheSize,
		cacheTTL:  defaultCacheTTL,
		now:       time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	kekBytes, err := deriveKey(master, infoKeyEncryption)
	if err != nil {
		return nil, err
	}
	kek, err := newAEAD(kekBytes)
	if err != nil {
		return nil, err
	}
	stream, err := ensureKeyStream(ctx, js, o)
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, o.bucket)
	if err != nil {
		return nil, fmt.Errorf("privacy: bind key bucket %s: %w", o.bucket, err)
	}
	return &JetStreamKeyStore{
		kv:      kv,
		stream:  stream,
		subject: "$KV." + o.bucket + ".",
		kek:     kek,
		cache:   newKeyCache(o.cacheSize, o.cacheTTL, o.now),
	}, nil
}

// ensureKeyStream creates the stream behind the bucket by hand: the generic
// CreateKeyValue sets DenyDelete, which would make SecureDeleteMsg fail and
// cannot be lifted afterwards. Apart from that the layout is a KV bucket's,
// so the KV API works on it. Purges and roll-ups (kv.Purge) are denied: they
// drop old revisions without overwriting them, and a stream purge would wipe
// every worker's key at once. Direct gets are off so that every read is
// answered by the stream leader: on a replicated bucket a follower may lag,
// and would serve a key just tombstoned or a revision already erased. Reads
// are rare anyway, thanks to the cache.
func ensureKeyStream(ctx context.Context, js jetstream.JetStream, o jetStreamOptions) (jetstream.Stream, error) {
	if o.replicas < 1 {
		return nil, fmt.Errorf("privacy: replicas must be at least 1, got %d", o.replicas)
	}
	cfg := jetstream.StreamConfig{
		Name:              "KV_" + o.bucket,
		Description:       "percorso: per-worker data keys, wrapped; destroying one erases the worker",
		Subjects:          []string{"$KV." + o.bucket + ".>"},
		MaxMsgsPerSubject: keyHistory,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgSize:        -1,
		MaxConsumers:      -1,
		Storage:           jetstream.FileStorage,
		Replicas:          o.replicas,
		Discard:           jetstream.DiscardNew,
		Duplicates:        2 * time.Minute,
		AllowRollup:       false,
		AllowDirect:       false,
		DenyDelete:        false,
		DenyPurge:         true,
	}
	stream, err := js.CreateStream(ctx, cfg)
	if err == nil {
		return stream, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, fmt.Errorf("privacy: create key bucket %s: %w", o.bucket, err)
	}
	// It exists with a different configuration (replicas, limits): keep it,
	// as long as secure deletion still works on it.
	stream, err = js.Stream(ctx, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("privacy: bind key bucket %s: %w", o.bucket, err)
	}
	got := stream.CachedInfo().Config
	if got.DenyDelete {
		return nil, fmt.Errorf("privacy: key bucket %s denies message deletes, so keys cannot be securely destroyed; it must be recreated by this package", o.bucket)
	}
	if got.MaxMsgsPerSubject < keyHistory {
		return nil, fmt.Errorf("privacy: key bucket %s keeps %d revision(s) per key, want at least %d, so that erasure never relies on the per-subject limit", o.bucket, got.MaxMsgsPerSubject, keyHistory)
	}
	return stream, nil
}

// DataKey implements KeyStore. Creation is race-safe across processes: the
// first kv.Create wins and everyone else reads the winner's key back.
func (s *JetStreamKeyStore) DataKey(ctx context.Context, ref string, create bool) ([]byte, error) {
	if !validRef(ref) {
		return nil, ErrInvalidRef
	}
	if key, erased, ok := s.cache.get(ref); ok {
		if erased {
			return nil, ErrErased
		}
		return key, nil
	}
	for range maxAttempts {
		entry, err := s.kv.Get(ctx, ref)
		switch {
		case err == nil:
			key, err := s.unwrap(ref, entry.Value())
			if errors.Is(err, ErrErased) {
				s.cache.putErased(ref)
			}
			if err != nil {
				return nil, err
			}
			s.cache.putKey(ref, key)
			return key, nil
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if !create {
				return nil, ErrNoKey
			}
		default:
			return nil, fmt.Errorf("privacy: read data key %s: %w", ref, err)
		}

		key, err := newDataKey()
		if err != nil {
			return nil, err
		}
		wrapped, err := s.wrap(ref, key)
		if err != nil {
			return nil, err
		}
		_, err = s.kv.Create(ctx, ref, wrapped)
		if err == nil {
			s.cache.putKey(ref, key)
			return key, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("privacy: create data key %s: %w", ref, err)
		}
		// Another writer got there first (a key or a tombstone): read it.
	}
	return nil, fmt.Errorf("privacy: data key %s kept changing under concurrent writers", ref)
}

// Destroy implements KeyStore. It works in two steps, both idempotent:
//
//  1. The tombstone goes in first, compare-and-set on the current revision.
//     From then on no process can read or recreate the key, and the erasure
//     survives a crash. This is why the bucket keeps two revisions per key:
//     with one, the tombstone would push the old key out through the
//     per-subject limit, which drops a message without overwriting it.
//  2. Every older revision is removed with SecureDeleteMsg, which overwrites
//     the record in the block file with random bytes.
//
// A Destroy interrupted after step 1 is completed by calling it again.
func (s *JetStreamKeyStore) Destroy(ctx context.Context, ref string) error {
	if !validRef(ref) {
		return ErrInvalidRef
	}
	// Stop local use at once; if the rest fails the caller retries, and
	// erasure is the outcome they asked for anyway.
	s.cache.putErased(ref)
	subject := s.subject + ref
	if err := s.writeTombstone(ctx, ref, subject); err != nil {
		return fmt.Errorf("privacy: destroy data key %s: %w", ref, err)
	}
	if err := s.eraseOlderRevisions(ctx, subject); err != nil {
		return fmt.Errorf("privacy: destroy data key %s: tombstone written, old key not yet overwritten (retry Destroy): %w", ref, err)
	}
	return nil
}

func (s *JetStreamKeyStore) writeTombstone(ctx context.Context, ref, subject string) error {
	for range maxAttempts {
		var rev uint64
		last, err := s.stream.GetLastMsgForSubject(ctx, subject)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			rev = 0 // never created: the tombstone still bars creation
		case err != nil:
			return err
		case bytes.Equal(last.Data, tombstone):
			return nil
		default:
			rev = last.Sequence
		}
		_, err = s.kv.Update(ctx, ref, tombstone, rev)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
		// A creator got in between: look again.
	}
	return errors.New("the key kept changing under concurrent writers")
}

// eraseOlderRevisions securely deletes the messages on subject that precede
// the tombstone, oldest first. Nothing can be added before the tombstone, so
// this terminates.
func (s *JetStreamKeyStore) eraseOlderRevisions(ctx context.Context, subject string) error {
	for range maxRevisions {
		first, err := s.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return err
		}
		if bytes.Equal(first.Data, tombstone) {
			return nil
		}
		if err := s.stream.SecureDeleteMsg(ctx, first.Sequence); err != nil {
			// A concurrent Destroy may have removed it first; that is fine
			// as long as the message is really gone.
			again, gerr := s.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subject))
			if gerr != nil || again.Sequence == first.Sequence {
				return err
			}
		}
	}
	return errors.New("more revisions than any KV bucket keeps")
}

func (s *JetStreamKeyStore) wrap(ref string, key []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, wrappedSize)
	out[0] = wrapVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("privacy: nonce: %w", err)
	}
	return s.kek.Seal(out, out[1:1+nonceSize], key, []byte(ref)), nil
}

func (s *JetStreamKeyStore) unwrap(ref string, v []byte) ([]byte, error) {
	if bytes.Equal(v, tombstone) {
		return nil, ErrErased
	}
	if len(v) != wrappedSize || v[0] != wrapVersion {
		return nil, fmt.Errorf("privacy: stored data key %s is malformed (%d bytes)", ref, len(v))
	}
	key, err := s.kek.Open(nil, v[1:1+nonceSize], v[1+nonceSize:], []byte(ref))
	if err != nil {
		return nil, fmt.Errorf("privacy: stored data key %s does not unwrap: wrong master key, or the store was altered", ref)
	}
	return key, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("privacy: %w", err)
	}
	return aead, nil
}
