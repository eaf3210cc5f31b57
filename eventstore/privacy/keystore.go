package privacy

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
)

// DataKeySize is the length of a worker's data key (AES-256).
const DataKeySize = 32

// KeyStore holds one data key per worker, named by ref (the pseudonym).
//
// DataKey returns the key, creating it when create is true and it does not
// exist yet; it returns ErrNoKey when it does not exist and create is false,
// and ErrErased once it was destroyed. Destroy is final and idempotent: a
// destroyed key is never recreated, and destroying a key that never existed
// still bars it from being created.
type KeyStore interface {
	DataKey(ctx context.Context, ref string, create bool) ([]byte, error)
	Destroy(ctx context.Context, ref string) error
}

var (
	_ KeyStore = (*MemoryKeyStore)(nil)
	_ KeyStore = (*JetStreamKeyStore)(nil)
)

// MemoryKeyStore keeps keys in process memory. It is for tests and for tools
// that must not touch the real store.
type MemoryKeyStore struct {
	mu     sync.Mutex
	keys   map[string][]byte
	erased map[string]bool
}

// NewMemoryKeyStore returns an empty in-memory store.
func NewMemoryKeyStore() *MemoryKeyStore {
	return &MemoryKeyStore{keys: map[string][]byte{}, erased: map[string]bool{}}
}

// DataKey implements KeyStore. Callers get a copy, so Destroy can wipe the
// stored key without pulling it from under a concurrent Seal.
func (s *MemoryKeyStore) DataKey(ctx context.Context, ref string, create bool) ([]byte, error) {
	if !validRef(ref) {
		return nil, ErrInvalidRef
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.erased[ref] {
		return nil, ErrErased
	}
	if k, ok := s.keys[ref]; ok {
		return clone(k), nil
	}
	if !create {
		return nil, ErrNoKey
	}
	k, err := newDataKey()
	if err != nil {
		return nil, err
	}
	s.keys[ref] = k
	return clone(k), nil
}

// Destroy implements KeyStore.
func (s *MemoryKeyStore) Destroy(ctx context.Context, ref string) error {
	if !validRef(ref) {
		return ErrInvalidRef
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[ref]; ok {
		clear(k)
		delete(s.keys, ref)
	}
	s.erased[ref] = true
	return nil
}

func newDataKey() ([]byte, error) {
	k := make([]byte, DataKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("privacy: generate data key: %w", err)
	}
	return k, nil
}

func clone(b []byte) []byte {
	return append([]byte(nil), b...)
}
