package natsjs_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/eventstore/natstest"
)

func TestProvisionNoLossSettings(t *testing.T) {
	cases := []struct {
		name     string
		replicas int
		url      func(t *testing.T) string
	}{
		{"single server", 1, func(t *testing.T) string { return natstest.Server(t, "").ClientURL() }},
		{"R3 cluster", 3, func(t *testing.T) string { return natstest.NewCluster(t).URLs() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.replicas > 1 && testing.Short() {
				t.Skip("starts a 3-node cluster")
			}
			ctx := timeout(t, 30*time.Second)
			_, js := natstest.Connect(t, c.url(t))
			if _, err := natsjs.Provision(ctx, js, c.replicas); err != nil {
				t.Fatalf("Provision: %v", err)
			}
			// Provisioning again checks the stream and leaves it be.
			st, err := natsjs.Provision(ctx, js, c.replicas)
			if err != nil {
				t.Fatalf("Provision on the provisioned stream: %v", err)
			}
			info, err := st.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cfg := info.Config
			checks := []struct {
				name      string
				got, want any
			}{
				{"name", cfg.Name, eventstore.StreamName},
				{"subjects", cfg.Subjects, []string{eventstore.EventsWildcard, eventstore.WorkersWildcard}},
				{"storage", cfg.Storage, jetstream.FileStorage},
				{"retention", cfg.Retention, jetstream.LimitsPolicy},
				{"max msgs", cfg.MaxMsgs, int64(-1)},
				{"max bytes", cfg.MaxBytes, int64(-1)},
				{"max age", cfg.MaxAge, time.Duration(0)},
				{"max msgs per subject", cfg.MaxMsgsPerSubject, int64(-1)},
				{"max msg size", cfg.MaxMsgSize, int32(-1)},
				{"deny delete", cfg.DenyDelete, true},
				{"deny purge", cfg.DenyPurge, true},
				{"allow rollup", cfg.AllowRollup, false},
				{"allow msg ttl", cfg.AllowMsgTTL, false},
				{"subject delete marker ttl", cfg.SubjectDeleteMarkerTTL, time.Duration(0)},
				{"allow msg schedules", cfg.AllowMsgSchedules, false},
				{"persist mode", cfg.PersistMode, jetstream.DefaultPersistMode},
				{"discard", cfg.Discard, jetstream.DiscardNew},
				{"allow atomic publish", cfg.AllowAtomicPublish, true},
				{"allow direct", cfg.AllowDirect, true},
				{"replicas", cfg.Replicas, c.replicas},
			}
			for _, ch := range checks {
				if !reflect.DeepEqual(ch.got, ch.want) {
					t.Errorf("%s is %v, want %v", ch.name, ch.got, ch.want)
				}
			}
			if c.replicas > 1 && (info.Cluster == nil || len(info.Cluster.Replicas) != c.replicas-1) {
				t.Errorf("cluster info %+v, want a leader and %d replicas", info.Cluster, c.replicas-1)
			}

			// The settings hold in practice: nothing can remove what was appended.
			ack, err := js.Publish(ctx, eventstore.EventSubject("provision-probe"), []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			if err := st.DeleteMsg(ctx, ack.Sequence); err == nil {
				t.Error("a message was deleted")
			}
			if err := st.SecureDeleteMsg(ctx, ack.Sequence); err == nil {
				t.Error("a message was securely deleted")
			}
			if err := st.Purge(ctx); err == nil {
				t.Error("the stream was purged")
			}
			if err := st.Purge(ctx, jetstream.WithPurgeSubject(eventstore.EventSubject("provision-probe"))); err == nil {
				t.Error("a subject was purged")
			}
			for _, h := range []struct{ name, value string }{{jetstream.MsgRollup, jetstream.MsgRollupSubject}, {jetstream.MsgTTLHeader, "1s"}} {
				m := nats.NewMsg(eventstore.EventSubject("provision-probe"))
				m.Header.Set(h.name, h.value)
				if _, err := js.PublishMsg(ctx, m); err == nil {
					t.Errorf("a message with %s: %s was accepted", h.name, h.value)
				}
			}
			if m, err := st.GetMsg(ctx, ack.Sequence); err != nil || m.Subject != eventstore.EventSubject("provision-probe") {
				t.Fatalf("the probe is gone: %v", err)
			}
		})
	}
}

func TestProvisionRefusesADifferentStream(t *testing.T) {
	cases := []struct {
		name   string
		change func(*jetstream.StreamConfig)
	}{
		{"max age", func(c *jetstream.StreamConfig) { c.MaxAge = 24 * time.Hour }},
		{"max msgs", func(c *jetstream.StreamConfig) { c.MaxMsgs = 1_000_000 }},
		{"max msgs per subject", func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 100 }},
		{"deletes allowed", func(c *jetstream.StreamConfig) { c.DenyDelete = false }},
		{"purges allowed", func(c *jetstream.StreamConfig) { c.DenyPurge = false }},
		{"rollups allowed", func(c *jetstream.StreamConfig) { c.AllowRollup, c.DenyPurge = true, false }},
		{"ttls allowed", func(c *jetstream.StreamConfig) { c.AllowMsgTTL = true }},
		{"discard old", func(c *jetstream.StreamConfig) { c.Discard = jetstream.DiscardOld }},
		{"memory storage", func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }},
		{"work-queue retention", func(c *jetstream.StreamConfig) { c.Retention = jetstream.WorkQueuePolicy }},
		{"no atomic publish", func(c *jetstream.StreamConfig) { c.AllowAtomicPublish = false }},
		{"other subjects", func(c *jetstream.StreamConfig) { c.Subjects = []string{eventstore.EventsWildcard} }},
		{"asynchronous persistence", func(c *jetstream.StreamConfig) {
			c.PersistMode, c.AllowAtomicPublish = jetstream.AsyncPersistMode, false // the server allows no other way
		}},
		{"replicas", nil}, // an R1 stream where R3 is asked for
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A server per case: recreating a stream in place is unreliable
			// while the old copy is still being removed.
			ctx := timeout(t, 30*time.Second)
			_, js := natstest.Connect(t, natstest.Server(t, "").ClientURL())
			cfg := natsjs.StreamConfig(1)
			replicas := 1
			if c.change == nil {
				replicas = 3
			} else {
				c.change(&cfg)
			}
			st, err := js.CreateStream(ctx, cfg)
			if err != nil {
				t.Fatalf("creating the differing stream: %v", err)
			}
			before, err := st.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, err = natsjs.Provision(ctx, js, replicas)
			if !errors.Is(err, natsjs.ErrStreamMismatch) {
				t.Fatalf("Provision: %v, want ErrStreamMismatch", err)
			}
			after, err := js.Stream(ctx, eventstore.StreamName)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(after.CachedInfo().Config, before.Config) {
				t.Fatalf("Provision changed the stream:\n got %+v\nwant %+v", after.CachedInfo().Config, before.Config)
			}
		})
	}
}

// TestDiffCoversEveryNoLossSetting guards Diff against a setting added to
// StreamConfig but not compared.
func TestDiffCoversEveryNoLossSetting(t *testing.T) {
	want := natsjs.StreamConfig(3)
	if d := natsjs.Diff(want, want); len(d) != 0 {
		t.Fatalf("Diff of a config with itself: %v", d)
	}
	changes := map[string]func(*jetstream.StreamConfig){
		"subjects":             func(c *jetstream.StreamConfig) { c.Subjects = slices.Clone(c.Subjects[:1]) },
		"retention":            func(c *jetstream.StreamConfig) { c.Retention = jetstream.InterestPolicy },
		"storage":              func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage },
		"replicas":             func(c *jetstream.StreamConfig) { c.Replicas = 1 },
		"discard":              func(c *jetstream.StreamConfig) { c.Discard = jetstream.DiscardOld },
		"max_msgs":             func(c *jetstream.StreamConfig) { c.MaxMsgs = 10 },
		"max_bytes":            func(c *jetstream.StreamConfig) { c.MaxBytes = 10 },
		"max_age":              func(c *jetstream.StreamConfig) { c.MaxAge = time.Hour },
		"max_msgs_per_subject": func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 10 },
		"deny_delete":          func(c *jetstream.StreamConfig) { c.DenyDelete = false },
		"deny_purge":           func(c *jetstream.StreamConfig) { c.DenyPurge = false },
		"allow_rollup_hdrs":    func(c *jetstream.StreamConfig) { c.AllowRollup = true },
		"allow_msg_ttl":        func(c *jetstream.StreamConfig) { c.AllowMsgTTL = true },
		"allow_atomic":         func(c *jetstream.StreamConfig) { c.AllowAtomicPublish = false },
		"allow_direct":         func(c *jetstream.StreamConfig) { c.AllowDirect = false },
		"persist_mode":         func(c *jetstream.StreamConfig) { c.PersistMode = jetstream.AsyncPersistMode },
		"allow_msg_schedules":  func(c *jetstream.StreamConfig) { c.AllowMsgSchedules = true },
	}
	for name, change := range changes {
		got := natsjs.StreamConfig(3)
		change(&got)
		d := natsjs.Diff(got, want)
		if len(d) != 1 || len(d[0]) < len(name) || d[0][:len(name)] != name {
			t.Errorf("changing %s: Diff says %v", name, d)
		}
	}
}
