package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/query"
	"github.com/percorso/percorso/domain/taxcode"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/audit"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/eventstore/privacy"
)

// errFound makes the process exit 1 after a report was printed: a
// verification found problems.
var errFound = errors.New("problems found")

// tools is what the auditors' and admins' subcommands share: a direct
// connection to the stream and the keys to read it.
type tools struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	store  *natsjs.Store
	codec  *eventstore.Codec
	sealer *privacy.Sealer
}

type toolFlags struct {
	natsURL string
	dataDir string
	json    bool
}

func (f *toolFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.natsURL, "nats-url", envOr("PERCORSO_NATS_URL", "nats://127.0.0.1:4250"), "NATS URL of the percorso stream (env PERCORSO_NATS_URL)")
	fs.StringVar(&f.dataDir, "data-dir", envOr("PERCORSO_DATA_DIR", "./data"), "data dir holding master.key, unless PERCORSO_MASTER_KEY is set")
	fs.BoolVar(&f.json, "json", false, "print JSON")
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func openTools(ctx context.Context, f toolFlags) (*tools, error) { return openToolsKeyed(ctx, f, true) }

// openToolsKeyed opens the tools; without needKey a missing master key is
// no error: the tools then read the stream's envelopes and hash chains,
// never personal data (t.sealer is nil).
func openToolsKeyed(ctx context.Context, f toolFlags, needKey bool) (*tools, error) {
	nc, err := nats.Connect(f.natsURL, nats.Name("percorso-cli"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", f.natsURL, err)
	}
	t := &tools{nc: nc}
	if t.js, err = jetstream.New(nc); err != nil {
		t.close()
		return nil, err
	}
	if t.stream, err = t.js.Stream(ctx, eventstore.StreamName); err != nil {
		t.close()
		return nil, fmt.Errorf("stream %s: %w", eventstore.StreamName, err)
	}
	var master []byte
	if v := os.Getenv("PERCORSO_MASTER_KEY"); v != "" {
		master, err = privacy.MasterKeyFromEnv(v)
	} else {
		master, err = privacy.LoadMasterKey(filepath.Join(f.dataDir, "master.key"))
	}
	if err != nil && !needKey && os.Getenv("PERCORSO_MASTER_KEY") == "" && errors.Is(err, fs.ErrNotExist) {
		t.codec = eventstore.NewCodec(nil, nil)
		t.store = natsjs.New(t.js, t.stream, t.codec, natsjs.WithCacheSize(0))
		return t, nil
	}
	if err != nil {
		t.close()
		return nil, fmt.Errorf("master key: %w", err)
	}
	ks, err := privacy.NewJetStreamKeyStore(ctx, t.js, master)
	if err != nil {
		t.close()
		return nil, err
	}
	if t.sealer, err = privacy.NewSealer(master, ks); err != nil {
		t.close()
		return nil, err
	}
	t.codec = eventstore.NewCodec(t.sealer, func(err error) bool { return errors.Is(err, privacy.ErrErased) })
	t.store = natsjs.New(t.js, t.stream, t.codec, natsjs.WithCacheSize(0))
	return t, nil
}

func (t *tools) close() { t.nc.Close() }

// pathsOf resolves a path id, or a tax code to all the worker's paths.
func (t *tools) pathsOf(ctx context.Context, arg string) ([]string, error) {
	if command.ValidUUID(arg) {
		return []string{arg}, nil
	}
	code := taxcode.Normalize(arg)
	if taxcode.CheckPerson(code) != nil {
		return nil, errors.New("the argument is neither a path id nor a valid tax code")
	}
	if t.sealer == nil {
		return nil, errors.New("a tax code needs the master key (PERCORSO_MASTER_KEY, or --data-dir holding master.key) to find the worker's paths; a path id does not")
	}
	wi, err := t.store.Worker(ctx, t.sealer.Pseudonym(code))
	if err != nil {
		return nil, err
	}
	if len(wi.Paths) == 0 {
		return nil, fmt.Errorf("no path for this worker")
	}
	return wi.Paths, nil
}

func runHistory(ctx context.Context, args []string, out, errw io.Writer) error {
	fs := flag.NewFlagSet("percorso history", flag.ContinueOnError)
	fs.SetOutput(errw)
	var f toolFlags
	f.register(fs)
	asOf := fs.String("as-of", "", "only events recorded up to this RFC 3339 time, and the state they produce")
	fs.Usage = func() {
		fmt.Fprintln(errw, "usage: percorso history [flags] <path-id | tax-code>")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("one path id or tax code is required")
	}
	opt := query.HistoryOptions{Personal: true}
	if *asOf != "" {
		tm, err := time.Parse(time.RFC3339Nano, *asOf)
		if err != nil {
			return fmt.Errorf("--as-of must be an RFC 3339 time")
		}
		opt.AsOf = &tm
	}
	t, err := openTools(ctx, f)
	if err != nil {
		return err
	}
	defer t.close()
	ids, err := t.pathsOf(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	a := audit.New(t.store, t.codec)
	var all []*query.History
	for _, id := range ids {
		h, err := a.History(ctx, id, opt)
		if err != nil {
			return fmt.Errorf("path %s: %w", id, err)
		}
		all = append(all, h)
	}
	if f.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if len(all) == 1 {
			return enc.Encode(all[0])
		}
		return enc.Encode(all)
	}
	for _, h := range all {
		fmt.Fprintf(out, "path %s\n", h.PathID)
		for _, e := range h.Events {
			fmt.Fprintf(out, "  %8d  %s  %-20s  %-14s  %s\n", e.Seq, e.Time.Format(time.RFC3339), e.Type, e.Actor, summary(e))
		}
		if h.State != nil {
			fmt.Fprintf(out, "  state: %s, %d credited minutes, version %d\n", h.State.Status, h.State.CreditedMinutesTotal, h.State.Version)
		}
	}
	return nil
}

// summary is one line saying what an event recorded.
func summary(e query.HistoryEvent) string {
	var d map[string]any
	if json.Unmarshal(e.Data, &d) != nil {
		return ""
	}
	var parts []string
	for _, k := range []string{"office", "category", "service", "credited_minutes", "actual_minutes", "group_size", "kind", "outcome", "reason", "traineeship_id"} {
		if v, ok := d[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	if w, ok := d["worker"].(map[string]any); ok {
		parts = append(parts, fmt.Sprintf("worker=%v %v (%v)", w["given_name"], w["family_name"], w["tax_code"]))
	}
	return strings.Join(parts, " ")
}

func runVerify(ctx context.Context, args []string, out, errw io.Writer) error {
	fs := flag.NewFlagSet("percorso verify", flag.ContinueOnError)
	fs.SetOutput(errw)
	var f toolFlags
	f.register(fs)
	all := fs.Bool("all", false, "verify every path and the stream's sequence continuity")
	fs.Usage = func() {
		fmt.Fprintln(errw, "usage: percorso verify [flags] (--all | <path-id | tax-code>)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *all == (fs.NArg() == 1) || fs.NArg() > 1 {
		fs.Usage()
		return errors.New("give --all or one path id or tax code")
	}
	// Hash chains need no key: an auditor without it verifies by path id.
	t, err := openToolsKeyed(ctx, f, false)
	if err != nil {
		return err
	}
	defer t.close()
	if *all {
		return t.verifyAll(ctx, out, f.json)
	}
	ids, err := t.pathsOf(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	a := audit.New(t.store, t.codec)
	failed := false
	var reports []*query.Verification
	for _, id := range ids {
		v, err := a.Verify(ctx, id)
		if err != nil {
			return fmt.Errorf("path %s: %w", id, err)
		}
		failed = failed || !v.OK
		reports = append(reports, v)
	}
	if f.json {
		json.NewEncoder(out).Encode(reports)
	} else {
		for _, v := range reports {
			fmt.Fprintf(out, "path %s: %s, %d events, head %s\n", v.PathID, okWord(v.OK), v.Events, v.HeadHash)
			for _, p := range v.Problems {
				fmt.Fprintf(out, "  seq %d event %s: %s\n", p.Seq, p.EventID, p.Reason)
			}
		}
	}
	if failed {
		return errFound
	}
	return nil
}

func okWord(ok bool) string {
	if ok {
		return "OK"
	}
	return "BROKEN"
}

// verifyAll reads the whole stream once, in order.
func (t *tools) verifyAll(ctx context.Context, out io.Writer, asJSON bool) error {
	info, err := t.stream.Info(ctx)
	if err != nil {
		return err
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	v := eventstore.NewStreamVerifier(first)
	if info.State.Msgs > 0 {
		cons, err := t.js.OrderedConsumer(ctx, eventstore.StreamName, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return err
		}
		it, err := cons.Messages()
		if err != nil {
			return err
		}
		for {
			m, err := it.Next()
			if err != nil {
				it.Stop()
				return err
			}
			md, err := m.Metadata()
			if err != nil {
				it.Stop()
				return err
			}
			seq := md.Sequence.Stream
			v.Seq(seq)
			if _, isEvent := eventstore.PathOf(m.Subject()); isEvent {
				env, err := eventstore.FromHeaders(seq, m.Subject(), m.Headers().Get, m.Data())
				if err != nil {
					path, _ := eventstore.PathOf(m.Subject())
					v.Problems = append(v.Problems, eventstore.PathProblem{PathID: path, Problem: eventstore.Problem{Seq: seq, Reason: err.Error()}})
				} else {
					v.Event(env)
				}
			}
			if seq >= last {
				break
			}
		}
		it.Stop()
	}
	if last > 0 && v.Last() != last {
		v.Problems = append(v.Problems, eventstore.PathProblem{Problem: eventstore.Problem{Seq: last, Reason: "the stream ends before its last sequence"}})
	}
	report := map[string]any{"ok": len(v.Problems) == 0, "first_seq": first, "last_seq": last, "events": v.Events, "paths": v.Paths, "problems": v.Problems}
	if asJSON {
		json.NewEncoder(out).Encode(report)
	} else {
		fmt.Fprintf(out, "stream %s: %s, sequences %d-%d, %d events on %d paths\n", eventstore.StreamName, okWord(len(v.Problems) == 0), first, last, v.Events, v.Paths)
		for _, p := range v.Problems {
			fmt.Fprintf(out, "  path %s seq %d event %s: %s\n", p.PathID, p.Seq, p.EventID, p.Reason)
		}
	}
	if len(v.Problems) > 0 {
		return errFound
	}
	return nil
}

func runErase(ctx context.Context, args []string, out, errw io.Writer) error {
	fs := flag.NewFlagSet("percorso erase", flag.ContinueOnError)
	fs.SetOutput(errw)
	var f toolFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(errw, "usage: percorso erase [flags] <tax-code>   (admin: erases the worker's personal data for good)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("one tax code is required")
	}
	t, err := openTools(ctx, f)
	if err != nil {
		return err
	}
	defer t.close()
	idem, err := natsjs.NewIdempotency(ctx, t.js, 0)
	if err != nil {
		return err
	}
	actor := "admin"
	if u, err := user.Current(); err == nil {
		actor = "admin:" + u.Username
	}
	res, err := command.New(t.store, idem, t.sealer).EraseWorker(ctx, command.Request{Actor: actor}, fs.Arg(0))
	if err != nil {
		return err
	}
	if f.json {
		return json.NewEncoder(out).Encode(map[string]any{"erased": true, "versions": res.Versions})
	}
	fmt.Fprintf(out, "erased: personal data of the worker on %d path(s) can no longer be read\n", len(res.Versions))
	return nil
}
