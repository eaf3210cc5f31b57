package natsjs_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/workerpath"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/eventstore/natstest"
	"github.com/percorso/percorso/eventstore/storetest"
)

// TestClusterLeaderLoss kills the stream leader while writers append
// continuously, as the command layer would: on an error they reload the
// path fresh and look for their own event before trying again. Every
// acknowledged event must be on the stream exactly once, nothing may be
// duplicated, and every path's chain must verify.
func TestClusterLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a node of a 3-node cluster")
	}
	const (
		writers        = 6
		pathsPerWriter = 8
		run            = 5 * time.Second
		killAfter      = 2 * time.Second
	)
	c := natstest.NewCluster(t)
	_, js := natstest.Connect(t, c.URLs())
	ctx := timeout(t, 60*time.Second)
	st, err := natsjs.Provision(ctx, js, 3)
	if err != nil {
		t.Fatal(err)
	}
	waitReadable(t, c)
	codec, _ := storetest.NewCodec(t)

	var (
		mu        sync.Mutex
		acked     = map[string]bool{} // event ids whose Append returned success
		recovered = map[string]bool{} // event ids found on the path after an error
		paths     []string
		failures  atomic.Int64
	)
	writeCtx, stop := context.WithTimeout(ctx, run)
	defer stop()
	var wg sync.WaitGroup
	for w := range writers {
		js, st := provisioned(t, c.URLs(), 3)
		s := natsjs.New(js, st, codec)
		mine := make([]string, pathsPerWriter)
		versions := make([]uint64, pathsPerWriter)
		for i := range mine {
			mine[i] = command.NewUUID()
		}
		mu.Lock()
		paths = append(paths, mine...)
		mu.Unlock()
		wg.Go(func() {
			for n := 0; writeCtx.Err() == nil; n++ {
				i := n % pathsPerWriter
				p := mine[i]
				var ev workerpath.Event = storetest.SessionDelivered(p, time.Now().UTC())
				m := command.Meta{CommandID: command.NewUUID(), Actor: fmt.Sprintf("writer-%d", w), CorrelationID: command.NewUUID()}
				id := command.EventID(m.CommandID, 0)
				for writeCtx.Err() == nil {
					actx, cancel := context.WithTimeout(ctx, 2*time.Second)
					v, err := s.Append(actx, m, []command.Write{{PathID: p, Expected: versions[i], Events: []workerpath.Event{ev}}}, nil)
					cancel()
					if err == nil {
						versions[i] = v[p]
						mu.Lock()
						acked[id] = true
						mu.Unlock()
						break
					}
					if !errors.Is(err, command.ErrConflict) {
						failures.Add(1)
					}
					// Ambiguous or refused: did it land after all?
					lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					h, err := s.Load(lctx, p, true)
					cancel()
					if err != nil {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					versions[i] = h.Version
					if landed(h, m.CommandID) {
						mu.Lock()
						recovered[id] = true
						mu.Unlock()
						break
					}
				}
			}
		})
	}

	time.Sleep(killAfter)
	var info *jetstream.StreamInfo
	retry(t, ctx, func(ctx context.Context) (err error) {
		if info, err = st.Info(ctx); err == nil && info.Cluster == nil {
			err = errors.New("no cluster information")
		}
		return err
	})
	killed := -1
	for i, srv := range c.Servers {
		if srv.Name() == info.Cluster.Leader {
			killed = i
		}
	}
	if killed < 0 {
		t.Fatalf("leader %q is none of the cluster's servers", info.Cluster.Leader)
	}
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	c.Servers[killed].Shutdown()
	wg.Wait()
	mu.Lock()
	after := len(acked) - before
	mu.Unlock()
	t.Logf("killed leader %s; %d events acknowledged before, %d after, %d found after an error, %d errors",
		info.Cluster.Leader, before, after, len(recovered), failures.Load())
	if before == 0 || after == 0 {
		t.Fatalf("%d appends before the kill, %d after: the test did not write through the failure", before, after)
	}

	// Check on the two surviving nodes, then bring the third back.
	seen, perPath := readAll(t, ctx, js, st)
	for id := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged event %s is on the stream %d times", id, seen[id])
		}
	}
	for id := range recovered {
		if seen[id] != 1 {
			t.Errorf("event %s, found after an error, is on the stream %d times", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s is on the stream %d times", id, n)
		}
	}
	if want := len(acked) + len(recovered); len(seen) != want {
		t.Errorf("the stream holds %d events, the writers know of %d", len(seen), want)
	}
	s := natsjs.New(js, st, codec)
	for _, p := range paths {
		var r eventstore.Report
		deadline := time.Now().Add(10 * time.Second)
		for {
			envs, err := s.ReadPath(ctx, p)
			if err != nil {
				t.Fatalf("ReadPath %s: %v", p, err)
			}
			// A follower may answer a moment behind: wait for the whole chain.
			if r = eventstore.Verify(p, envs); r.Events >= perPath[p] || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !r.OK || r.Events != perPath[p] {
			t.Errorf("path %s: chain ok=%v with %d events, %d on the subject; problems %+v", p, r.OK, r.Events, perPath[p], r.Problems)
		}
	}

	c.Restart(killed)
	name := c.Servers[killed].Name()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := st.Info(ictx)
		cancel()
		caughtUp := false
		if err == nil && info.Cluster != nil {
			for _, r := range info.Cluster.Replicas {
				caughtUp = caughtUp || (r.Name == name && r.Current && r.Lag == 0)
			}
			caughtUp = caughtUp || info.Cluster.Leader == name
		}
		if caughtUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted node %s has not caught up: %+v, %v", name, info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func landed(h *command.History, cmdID string) bool {
	for _, r := range h.Events {
		if r.CommandID == cmdID {
			return true
		}
	}
	return false
}

// readAll counts every event id on the stream, and the events of each
// path, with one ordered consumer, starting over if the cluster interrupts
// the read.
func readAll(t *testing.T, ctx context.Context, js jetstream.JetStream, st jetstream.Stream) (seen, perPath map[string]int) {
	t.Helper()
	retryEach(t, ctx, 20*time.Second, func(ctx context.Context) error {
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		cons, err := js.OrderedConsumer(ctx, eventstore.StreamName, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return err
		}
		seen, perPath = map[string]int{}, map[string]int{}
		for got := uint64(0); got < info.State.Msgs; {
			batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				return err
			}
			n := 0
			for msg := range batch.Messages() {
				n++
				got++
				if p, ok := eventstore.PathOf(msg.Subject()); ok {
					seen[msg.Headers().Get(eventstore.HdrID)]++
					perPath[p]++
				}
			}
			if err := batch.Error(); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("read %d of %d messages, then nothing", got, info.State.Msgs)
			}
		}
		return nil
	})
	return seen, perPath
}
