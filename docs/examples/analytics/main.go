// Command analytics is an example consumer for analytics teams: it reads
// percorso's event stream with a durable pull consumer and computes the
// monthly activity report (workers, sessions, credited and actual minutes
// by month, office, worker type and service) from the events alone, as any
// team can without asking percorso for anything. See docs/analytics.md.
//
//	go run ./docs/examples/analytics --nats-url nats://127.0.0.1:4250 --from 2010-01-01 --to 2010-12-31
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Row is one cell of the report, in the API's JSON shape.
type Row struct {
	Month           string `json:"month"`
	Office          string `json:"office"`
	Category        string `json:"category"`
	Service         int    `json:"service"`
	Workers         int    `json:"workers"`
	Sessions        int    `json:"sessions"`
	CreditedMinutes int    `json:"credited_minutes"`
	ActualMinutes   int    `json:"actual_minutes"`
}

type cellKey struct {
	month, office, category string
	service                 int
}

type cell struct {
	workers                           map[string]bool
	sessions, credited, actualMinutes int
}

type pathInfo struct{ category, workerRef string }

// report accumulates events; it is idempotent by event id, since a durable
// consumer delivers at least once.
type report struct {
	from, to string // inclusive YYYY-MM-DD on the delivery date
	seen     map[string]bool
	paths    map[string]pathInfo
	cells    map[cellKey]*cell
	rome     *time.Location
}

func (r *report) add(eventType, id string, data []byte) error {
	if r.seen[id] {
		return nil
	}
	r.seen[id] = true
	switch eventType {
	case "TakenInCharge":
		var e struct {
			PathID    string `json:"path_id"`
			WorkerRef string `json:"worker_ref"`
			Category  string `json:"category"`
		}
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		r.paths[e.PathID] = pathInfo{category: e.Category, workerRef: e.WorkerRef}
	case "SessionDelivered":
		var e struct {
			PathID          string    `json:"path_id"`
			Office          string    `json:"office"`
			Service         int       `json:"service"`
			DeliveredAt     time.Time `json:"delivered_at"`
			CreditedMinutes int       `json:"credited_minutes"`
			ActualMinutes   int       `json:"actual_minutes"`
		}
		if err := json.Unmarshal(data, &e); err != nil {
			return err
		}
		day := e.DeliveredAt.In(r.rome).Format(time.DateOnly)
		if day < r.from || day > r.to {
			return nil
		}
		p, ok := r.paths[e.PathID]
		if !ok {
			return fmt.Errorf("session on path %s before its TakenInCharge", e.PathID)
		}
		k := cellKey{month: day[:7], office: e.Office, category: p.category, service: e.Service}
		c := r.cells[k]
		if c == nil {
			c = &cell{workers: map[string]bool{}}
			r.cells[k] = c
		}
		c.workers[p.workerRef] = true
		c.sessions++
		c.credited += e.CreditedMinutes
		c.actualMinutes += e.ActualMinutes
	}
	return nil
}

func (r *report) rows() []Row {
	out := []Row{}
	for k, c := range r.cells {
		out = append(out, Row{Month: k.month, Office: k.office, Category: k.category, Service: k.service,
			Workers: len(c.workers), Sessions: c.sessions, CreditedMinutes: c.credited, ActualMinutes: c.actualMinutes})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Month != b.Month {
			return a.Month < b.Month
		}
		if a.Office != b.Office {
			return a.Office < b.Office
		}
		if a.Category != b.Category {
			return a.Category < b.Category
		}
		return a.Service < b.Service
	})
	return out
}

func main() {
	url := flag.String("nats-url", "nats://127.0.0.1:4250", "NATS URL of the percorso stream")
	durable := flag.String("durable", "analytics-activity", "durable consumer name")
	from := flag.String("from", "0000-01-01", "first delivery day, YYYY-MM-DD")
	to := flag.String("to", "9999-12-31", "last delivery day, YYYY-MM-DD")
	flag.Parse()
	if err := run(*url, *durable, *from, *to); err != nil {
		fmt.Fprintln(os.Stderr, "analytics:", err)
		os.Exit(1)
	}
}

func run(url, durable, from, to string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		return err
	}
	nc, err := nats.Connect(url, nats.Name("analytics-example"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	// A durable consumer remembers its position across runs; this example
	// rebuilds its report from the start each time, so it starts over.
	if err := js.DeleteConsumer(ctx, "PERCORSO", durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "PERCORSO", jetstream.ConsumerConfig{
		Durable:       durable,
		FilterSubject: "percorso.events.>",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		// Fetches arrive in stream order; a redelivery may not, which is
		// why the report counts each event id once.
		MaxAckPending: 1000,
	})
	if err != nil {
		return err
	}
	rep := &report{from: from, to: to, seen: map[string]bool{}, paths: map[string]pathInfo{}, cells: map[cellKey]*cell{}, rome: rome}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		got, done := 0, false
		for m := range batch.Messages() {
			got++
			if err := rep.add(m.Headers().Get("ce-type"), m.Headers().Get("ce-id"), m.Data()); err != nil {
				return err
			}
			if err := m.Ack(); err != nil {
				return err
			}
			if md, err := m.Metadata(); err == nil && md.NumPending == 0 {
				done = true
			}
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if got == 0 || done {
			break
		}
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"rows": rep.rows()})
}
