// Package natsjs is percorso's event store on NATS JetStream: one literal
// subject per path, optimistic concurrency on the subject's last sequence,
// multi-event and multi-path commands as atomic batches, back-pointers for
// fast loads, a hash chain per path, and a cache of recent paths that
// optimistic concurrency keeps safe.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/eventstore"
)

// StreamConfig is the no-loss configuration of the event stream: file
// storage, kept forever (limits retention with no limits), nothing may be
// deleted, purged, rolled up or expired, and a full stream refuses new
// writes rather than dropping old ones.
func StreamConfig(replicas int) jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:               eventstore.StreamName,
		Description:        "percorso: every worker path's events, and the per-worker index",
		Subjects:           []string{eventstore.EventsWildcard, eventstore.WorkersWildcard},
		Retention:          jetstream.LimitsPolicy,
		MaxConsumers:       -1,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxAge:             0,
		MaxMsgsPerSubject:  -1,
		MaxMsgSize:         -1,
		Discard:            jetstream.DiscardNew,
		Storage:            jetstream.FileStorage,
		Replicas:           replicas,
		Duplicates:         2 * time.Minute,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowRollup:        false,
		AllowMsgTTL:        false,
		AllowDirect:        true,
		AllowAtomicPublish: true,
	}
}

// ErrStreamMismatch reports an existing stream whose settings differ from
// the no-loss configuration. It is never changed silently: an operator must
// look at it.
var ErrStreamMismatch = errors.New("natsjs: existing stream settings differ")

// Provision creates the stream, or checks an existing one.
func Provision(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	want := StreamConfig(replicas)
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, want.Name)
		} else if err == nil {
			return s, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("natsjs: stream %s: %w", want.Name, err)
	}
	if diff := Diff(s.CachedInfo().Config, want); len(diff) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrStreamMismatch, strings.Join(diff, "; "))
	}
	return s, nil
}

// Diff lists the no-loss settings that got differs from want in.
func Diff(got, want jetstream.StreamConfig) []string {
	var d []string
	check := func(name string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			d = append(d, fmt.Sprintf("%s is %v, want %v", name, g, w))
		}
	}
	check("subjects", got.Subjects, want.Subjects)
	check("retention", got.Retention, want.Retention)
	check("storage", got.Storage, want.Storage)
	check("replicas", got.Replicas, want.Replicas)
	check("discard", got.Discard, want.Discard)
	check("max_msgs", got.MaxMsgs, want.MaxMsgs)
	check("max_bytes", got.MaxBytes, want.MaxBytes)
	check("max_age", got.MaxAge, want.MaxAge)
	check("max_msgs_per_subject", got.MaxMsgsPerSubject, want.MaxMsgsPerSubject)
	check("deny_delete", got.DenyDelete, want.DenyDelete)
	check("deny_purge", got.DenyPurge, want.DenyPurge)
	check("allow_rollup_hdrs", got.AllowRollup, want.AllowRollup)
	check("allow_msg_ttl", got.AllowMsgTTL, want.AllowMsgTTL)
	// Asynchronous persistence acknowledges writes before they are stored,
	// and schedules write (and may roll up) on the stream's behalf.
	check("persist_mode", got.PersistMode, want.PersistMode)
	check("allow_msg_schedules", got.AllowMsgSchedules, want.AllowMsgSchedules)
	check("allow_atomic", got.AllowAtomicPublish, want.AllowAtomicPublish)
	check("allow_direct", got.AllowDirect, want.AllowDirect)
	return d
}
