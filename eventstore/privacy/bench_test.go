package privacy

import (
	"context"
	"testing"
)

// benchSealers covers both stores with the cache warm: the key is fetched
// once before timing, as for a worker whose events are being written.
func benchSealers(b *testing.B) []struct {
	name string
	s    *Sealer
} {
	srv, _ := startServer(b, b.TempDir())
	out := []struct {
		name string
		s    *Sealer
	}{}
	for _, st := range []struct {
		name string
		ks   KeyStore
	}{
		{"memory", NewMemoryKeyStore()},
		{"jetstream", newJSStore(b, connect(b, srv))},
	} {
		s, err := NewSealer(testMaster, st.ks)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, struct {
			name string
			s    *Sealer
		}{st.name, s})
	}
	return out
}

func BenchmarkSeal(b *testing.B) {
	ctx := context.Background()
	plain := []byte("RSSMRA80A01H501U")
	for _, bs := range benchSealers(b) {
		b.Run(bs.name, func(b *testing.B) {
			ref := bs.s.Pseudonym("RSSMRA80A01H501U")
			if _, err := bs.s.Seal(ctx, ref, plain); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bs.s.Seal(ctx, ref, plain); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	for _, bs := range benchSealers(b) {
		b.Run(bs.name, func(b *testing.B) {
			ref := bs.s.Pseudonym("RSSMRA80A01H501U")
			sealed, err := bs.s.Seal(ctx, ref, []byte("RSSMRA80A01H501U"))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bs.s.Open(ctx, ref, sealed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPseudonym(b *testing.B) {
	p, err := NewPseudonymizer(testMaster)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Pseudonym("RSSMRA80A01H501U")
	}
}
