package privacy

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const goodHex = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

func TestLoadMasterKey(t *testing.T) {
	want, _ := hex.DecodeString(goodHex)
	tests := []struct {
		name    string
		content string // written to the file unless missing
		missing bool
		wantErr error
	}{
		{name: "plain", content: goodHex},
		{name: "trailing newline", content: goodHex + "\n"},
		{name: "surrounding whitespace", content: "  \t" + goodHex + "\r\n\n"},
		{name: "upper case hex", content: strings.ToUpper(goodHex)},
		{name: "missing file", missing: true, wantErr: fs.ErrNotExist},
		{name: "empty file", content: "", wantErr: ErrBadMasterKey},
		{name: "whitespace only", content: " \n\t", wantErr: ErrBadMasterKey},
		{name: "too short", content: goodHex[:62], wantErr: ErrBadMasterKey},
		{name: "too long", content: goodHex + "00", wantErr: ErrBadMasterKey},
		{name: "raw 32 bytes instead of hex", content: string(want), wantErr: ErrBadMasterKey},
		{name: "not hex", content: "zz" + goodHex[2:], wantErr: ErrBadMasterKey},
		{name: "inner space", content: goodHex[:32] + " " + goodHex[33:], wantErr: ErrBadMasterKey},
		{name: "all zeros", content: strings.Repeat("0", 64), wantErr: ErrBadMasterKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "master.key")
			if !tt.missing {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := LoadMasterKey(path)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				// The key is secret: it must not leak into error text.
				if strings.Contains(err.Error(), goodHex[2:20]) {
					t.Fatalf("error echoes key material: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("key = %x, want %x", got, want)
			}
		})
	}
}

func TestLoadOrCreateMasterKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "master.key")

	k1, created, err := LoadOrCreateMasterKey(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	if len(k1) != MasterKeySize {
		t.Fatalf("len = %d", len(k1))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("mode = %o, want 600", perm)
	}
	loaded, err := LoadMasterKey(path)
	if err != nil || !bytes.Equal(loaded, k1) {
		t.Fatalf("LoadMasterKey after create: %x, %v", loaded, err)
	}

	k2, created, err := LoadOrCreateMasterKey(path)
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v", created, err)
	}
	if !bytes.Equal(k1, k2) {
		t.Fatal("second call returned a different key")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the key file", len(entries))
	}
}

func TestLoadOrCreateMasterKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	const n = 8
	keys := make([][]byte, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], created[i], errs[i] = LoadOrCreateMasterKey(path) })
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("goroutine %d got a different key", i)
		}
		if created[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Fatalf("%d callers report creating the key, want 1", creators)
	}
}

func TestLoadOrCreateMasterKeyRejectsBadExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte("deadbeef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A damaged key file must stop startup, never be silently replaced:
	// a new key would make every sealed field unreadable.
	if _, _, err := LoadOrCreateMasterKey(path); !errors.Is(err, ErrBadMasterKey) {
		t.Fatalf("err = %v, want ErrBadMasterKey", err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "deadbeef\n" {
		t.Fatal("bad key file was overwritten")
	}
}

func TestMasterKeyFromEnv(t *testing.T) {
	want, _ := hex.DecodeString(goodHex)
	tests := []struct {
		name  string
		value string
		ok    bool
	}{
		{"hex", goodHex, true},
		{"with newline", goodHex + "\n", true},
		{"empty", "", false},
		{"short", goodHex[:10], false},
		{"base64 instead of hex", "jx4tPEtaaXiHlqW0w9Lh8A8eLTxLWml4h5altMPS4fA=", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MasterKeyFromEnv(tt.value)
			if !tt.ok {
				if !errors.Is(err, ErrBadMasterKey) {
					t.Fatalf("err = %v, want ErrBadMasterKey", err)
				}
				if !strings.Contains(err.Error(), EnvMasterKey) {
					t.Fatalf("error does not name %s: %v", EnvMasterKey, err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("got %x, %v", got, err)
			}
		})
	}
}

func TestConstructorsRejectBadMasterKeys(t *testing.T) {
	for _, master := range [][]byte{nil, make([]byte, 16), make([]byte, 32), make([]byte, 33)} {
		if _, err := NewPseudonymizer(master); !errors.Is(err, ErrBadMasterKey) {
			t.Errorf("NewPseudonymizer(%d bytes) err = %v", len(master), err)
		}
		if _, err := NewSealer(master, NewMemoryKeyStore()); !errors.Is(err, ErrBadMasterKey) {
			t.Errorf("NewSealer(%d bytes) err = %v", len(master), err)
		}
	}
}
