package privacy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// EnvMasterKey is the environment variable that carries the master key when
// it is not kept in a file (containers, secret managers).
const EnvMasterKey = "PERCORSO_MASTER_KEY"

// MasterKeySize is the length of the master key in bytes.
const MasterKeySize = 32

// LoadMasterKey reads a master key written as 64 hexadecimal characters.
// Surrounding whitespace is ignored so that editors and `echo` may add a
// newline.
func LoadMasterKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("privacy: read master key: %w", err)
	}
	key, err := parseMasterKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return key, nil
}

// LoadOrCreateMasterKey loads the master key at path, generating one first if
// the file does not exist; created reports that it did. The file is created
// with mode 0600 and atomically, so concurrent first starts agree on one key
// and no reader ever sees a half-written file.
func LoadOrCreateMasterKey(path string) (key []byte, created bool, err error) {
	key, err = LoadMasterKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("privacy: create master key directory: %w", err)
	}
	key = make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("privacy: generate master key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".master-key-*")
	if err != nil {
		return nil, false, fmt.Errorf("privacy: create master key: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp already uses 0600; Chmod guards against a permissive umask
	// policy on exotic platforms.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("privacy: create master key: %w", err)
	}
	if _, err := tmp.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("privacy: write master key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("privacy: write master key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("privacy: write master key: %w", err)
	}
	// Link, unlike Rename, fails when the target exists: whoever links first
	// wins and everyone else loads the winner's key.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			key, err = LoadMasterKey(path)
			return key, false, err
		}
		return nil, false, fmt.Errorf("privacy: install master key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return key, true, nil
}

// MasterKeyFromEnv parses the value of PERCORSO_MASTER_KEY.
func MasterKeyFromEnv(value string) ([]byte, error) {
	key, err := parseMasterKey(value)
	if err != nil {
		return nil, fmt.Errorf("%w (from %s)", err, EnvMasterKey)
	}
	return key, nil
}

// parseMasterKey never echoes the input: it is a secret, and error messages
// end up in logs.
func parseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty, want %d hexadecimal characters", ErrBadMasterKey, 2*MasterKeySize)
	}
	if len(s) != 2*MasterKeySize {
		return nil, fmt.Errorf("%w: %d characters, want %d hexadecimal characters (%d bytes)", ErrBadMasterKey, len(s), 2*MasterKeySize, MasterKeySize)
	}
	key, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not hexadecimal", ErrBadMasterKey)
	}
	if allZero(key) {
		return nil, fmt.Errorf("%w: all zeros", ErrBadMasterKey)
	}
	return key, nil
}

func checkMasterKey(master []byte) error {
	if len(master) != MasterKeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadMasterKey, len(master), MasterKeySize)
	}
	if allZero(master) {
		return fmt.Errorf("%w: all zeros", ErrBadMasterKey)
	}
	return nil
}

func allZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}
