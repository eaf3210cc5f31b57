package privacy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// keyStores lists every KeyStore implementation; each test below runs
// against all of them so they cannot drift apart.
func keyStores() []struct {
	name string
	new  func(t *testing.T) KeyStore
} {
	return []struct {
		name string
		new  func(t *testing.T) KeyStore
	}{
		{"memory", func(t *testing.T) KeyStore { return NewMemoryKeyStore() }},
		{"jetstream", func(t *testing.T) KeyStore {
			s, _ := startServer(t, t.TempDir())
			return newJSStore(t, connect(t, s))
		}},
		{"jetstream-nocache", func(t *testing.T) KeyStore {
			s, _ := startServer(t, t.TempDir())
			return newJSStore(t, connect(t, s), WithCacheSize(0))
		}},
	}
}

func forEachStore(t *testing.T, test func(t *testing.T, ks KeyStore, s *Sealer)) {
	for _, f := range keyStores() {
		t.Run(f.name, func(t *testing.T) {
			ks := f.new(t)
			s, err := NewSealer(testMaster, ks)
			if err != nil {
				t.Fatal(err)
			}
			test(t, ks, s)
		})
	}
}

func TestSealRoundTrip(t *testing.T) {
	plaintexts := []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"tax code", []byte("RSSMRA80A01H501U")},
		{"accented name", []byte("Nicolò D'Alò")},
		{"birth date", []byte("1980-01-01")},
		{"binary", []byte{0, 1, 2, 0xff, 0xfe}},
		{"64 KiB", bytes.Repeat([]byte("mediatore: arabo; "), 3641)},
	}
	forEachStore(t, func(t *testing.T, ks KeyStore, s *Sealer) {
		ctx := ctxT(t)
		ref := s.Pseudonym("RSSMRA80A01H501U")
		for _, p := range plaintexts {
			sealed, err := s.Seal(ctx, ref, p.data)
			if err != nil {
				t.Fatalf("%s: Seal: %v", p.name, err)
			}
			if !strings.HasPrefix(sealed, "v1.") || strings.ContainsAny(sealed[3:], "+/=.") {
				t.Fatalf("%s: sealed form %q is not v1.base64url", p.name, sealed[:min(len(sealed), 40)])
			}
			if len(p.data) >= 8 && strings.Contains(sealed, string(p.data[:8])) {
				t.Fatalf("%s: plaintext visible in sealed value", p.name)
			}
			again, err := s.Seal(ctx, ref, p.data)
			if err != nil {
				t.Fatal(err)
			}
			if again == sealed {
				t.Fatalf("%s: sealing twice gave the same output: nonce reused", p.name)
			}
			got, err := s.Open(ctx, ref, sealed)
			if err != nil {
				t.Fatalf("%s: Open: %v", p.name, err)
			}
			if !bytes.Equal(got, p.data) {
				t.Fatalf("%s: round trip mismatch", p.name)
			}
		}
	})
}

func TestDataKeysPerWorker(t *testing.T) {
	forEachStore(t, func(t *testing.T, ks KeyStore, s *Sealer) {
		ctx := ctxT(t)
		a, b := s.Pseudonym("RSSMRA80A01H501U"), s.Pseudonym("RSSMRA45D25F205N")

		if _, err := ks.DataKey(ctx, a, false); !errors.Is(err, ErrNoKey) {
			t.Fatalf("DataKey(create=false) on a new worker: err = %v, want ErrNoKey", err)
		}
		ka, err := ks.DataKey(ctx, a, true)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := ks.DataKey(ctx, b, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(ka) != DataKeySize || len(kb) != DataKeySize {
			t.Fatalf("key lengths %d, %d", len(ka), len(kb))
		}
		if bytes.Equal(ka, kb) {
			t.Fatal("two workers share a data key")
		}
		ka2, err := ks.DataKey(ctx, a, false)
		if err != nil || !bytes.Equal(ka, ka2) {
			t.Fatalf("second DataKey: %v, same=%v", err, bytes.Equal(ka, ka2))
		}
		// Callers get copies: scribbling on one must not corrupt the store.
		clear(ka2)
		ka3, _ := ks.DataKey(ctx, a, false)
		if !bytes.Equal(ka, ka3) {
			t.Fatal("DataKey returned the store's own slice")
		}
	})
}

func TestOpenRejectsBadInput(t *testing.T) {
	forEachStore(t, func(t *testing.T, ks KeyStore, s *Sealer) {
		ctx := ctxT(t)
		ref := s.Pseudonym("RSSMRA80A01H501U")
		other := s.Pseudonym("RSSMRA45D25F205N")
		stranger := s.Pseudonym("12345678901") // never sealed for
		sealed, err := s.Seal(ctx, ref, []byte("Mario Rossi"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Seal(ctx, other, []byte("x")); err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(sealed[3:])
		flip := func(i int) string {
			b := bytes.Clone(raw)
			b[i] ^= 0x01
			return "v1." + base64.RawURLEncoding.EncodeToString(b)
		}
		tests := []struct {
			name   string
			ref    string
			sealed string
			want   error
		}{
			{"flipped nonce byte", ref, flip(0), ErrTampered},
			{"flipped ciphertext byte", ref, flip(nonceSize + 2), ErrTampered},
			{"flipped tag byte", ref, flip(len(raw) - 1), ErrTampered},
			{"truncated", ref, "v1." + base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1]), ErrTampered},
			{"extended", ref, "v1." + base64.RawURLEncoding.EncodeToString(append(bytes.Clone(raw), 0)), ErrTampered},
			{"another worker's ref", other, sealed, ErrTampered},
			{"ref without a key", stranger, sealed, ErrNoKey},
			{"unknown version", ref, "v2." + sealed[3:], ErrMalformed},
			{"no prefix", ref, sealed[3:], ErrMalformed},
			{"empty", ref, "", ErrMalformed},
			{"base64 padding", ref, sealed + "=", ErrMalformed},
			{"not base64", ref, "v1.***", ErrMalformed},
			{"shorter than nonce and tag", ref, "v1." + base64.RawURLEncoding.EncodeToString(raw[:27]), ErrMalformed},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := s.Open(ctx, tt.ref, tt.sealed)
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				if got != nil {
					t.Fatal("returned plaintext alongside an error")
				}
			})
		}
		// The genuine value still opens: nothing above damaged the key.
		if got, err := s.Open(ctx, ref, sealed); err != nil || string(got) != "Mario Rossi" {
			t.Fatalf("genuine value: %q, %v", got, err)
		}
	})
}

func TestErase(t *testing.T) {
	forEachStore(t, func(t *testing.T, ks KeyStore, s *Sealer) {
		ctx := ctxT(t)
		ref := s.Pseudonym("RSSMRA80A01H501U")
		keep := s.Pseudonym("RSSMRA45D25F205N")
		sealed, err := s.Seal(ctx, ref, []byte("disabile: sì"))
		if err != nil {
			t.Fatal(err)
		}
		kept, err := s.Seal(ctx, keep, []byte("Giulia Bianchi"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Erase(ctx, ref); err != nil {
			t.Fatalf("Erase: %v", err)
		}

		steps := []struct {
			name string
			run  func() error
			want error
		}{
			{"Open after erase", func() error { _, err := s.Open(ctx, ref, sealed); return err }, ErrErased},
			{"Seal after erase", func() error { _, err := s.Seal(ctx, ref, []byte("x")); return err }, ErrErased},
			{"DataKey create after erase", func() error { _, err := ks.DataKey(ctx, ref, true); return err }, ErrErased},
			{"DataKey lookup after erase", func() error { _, err := ks.DataKey(ctx, ref, false); return err }, ErrErased},
			{"Erase again is a no-op", func() error { return s.Erase(ctx, ref) }, nil},
			{"Open still erased after second Erase", func() error { _, err := s.Open(ctx, ref, sealed); return err }, ErrErased},
			{"other workers unaffected", func() error {
				got, err := s.Open(ctx, keep, kept)
				if err == nil && string(got) != "Giulia Bianchi" {
					return errors.New("wrong plaintext")
				}
				return err
			}, nil},
		}
		for _, st := range steps {
			if err := st.run(); !errors.Is(err, st.want) || (st.want == nil && err != nil) {
				t.Errorf("%s: err = %v, want %v", st.name, err, st.want)
			}
		}
	})
}

func TestEraseBeforeFirstSeal(t *testing.T) {
	forEachStore(t, func(t *testing.T, ks KeyStore, s *Sealer) {
		ctx := ctxT(t)
		ref := s.Pseudonym("RSSMRA80A01H501U")
		if err := s.Erase(ctx, ref); err != nil {
			t.Fatalf("Erase of a worker with no key: %v", err)
		}
		if _, err := s.Seal(ctx, ref, []byte("x")); !errors.Is(err, ErrErased) {
			t.Fatalf("Seal after erasing an unknown worker: err = %v, want ErrErased", err)
		}
	})
}

func TestInvalidRefs(t *testing.T) {
	refs := []string{"", "a.b", "a b", "a*", ">", "a/b", "ä", strings.Repeat("a", 65)}
	forEachStore(t, func(t *testing.T, ks KeyStore, s *Sealer) {
		ctx := ctxT(t)
		for _, ref := range refs {
			if _, err := s.Seal(ctx, ref, []byte("x")); !errors.Is(err, ErrInvalidRef) {
				t.Errorf("Seal(%q): err = %v", ref, err)
			}
			if _, err := ks.DataKey(ctx, ref, false); !errors.Is(err, ErrInvalidRef) {
				t.Errorf("DataKey(%q): err = %v", ref, err)
			}
			if err := s.Erase(ctx, ref); !errors.Is(err, ErrInvalidRef) {
				t.Errorf("Erase(%q): err = %v", ref, err)
			}
		}
		// The longest accepted ref works end to end.
		long := strings.Repeat("f", 64)
		if _, err := s.Seal(ctx, long, []byte("x")); err != nil {
			t.Errorf("Seal with a 64-character ref: %v", err)
		}
	})
}
