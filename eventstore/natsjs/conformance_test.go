package natsjs_test

import (
	"testing"
	"time"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/eventstore/natstest"
	"github.com/percorso/percorso/eventstore/storetest"
)

func TestConformanceSingleServer(t *testing.T) {
	s := natstest.Server(t, "")
	storetest.Run(t, harnesses(s.ClientURL(), 1))
}

// TestConformanceCluster runs the suite on an R3 stream: conflicts there
// also come back as 10164 (a competing write in flight), and followers may
// answer reads a moment behind the leader.
func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := natstest.NewCluster(t)
	_, js := natstest.Connect(t, c.URLs())
	if _, err := natsjs.Provision(timeout(t, 30*time.Second), js, 3); err != nil {
		t.Fatalf("Provision R3: %v", err)
	}
	waitReadable(t, c)
	storetest.Run(t, harnesses(c.URLs(), 3))
}

func TestIdempotency(t *testing.T) {
	url := natstest.Server(t, "").ClientURL()
	storetest.RunIdempotency(t, func(t *testing.T) command.Idempotency {
		_, js := natstest.Connect(t, url)
		i, err := natsjs.NewIdempotency(timeout(t, 30*time.Second), js, 1)
		if err != nil {
			t.Fatal(err)
		}
		return i
	})
}
