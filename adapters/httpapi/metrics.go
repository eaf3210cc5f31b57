package httpapi

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Metrics counts commands by name and outcome in the Prometheus text format.
type Metrics struct {
	mu       sync.Mutex
	commands map[[2]string]uint64
	seconds  map[string]float64
	gauges   []func() (string, float64)
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	return &Metrics{commands: map[[2]string]uint64{}, seconds: map[string]float64{}}
}

// Command records one command's outcome ("" is success).
func (m *Metrics) Command(name, code string, d time.Duration) {
	if code == "" {
		code = "ok"
	}
	m.mu.Lock()
	m.commands[[2]string{name, code}]++
	m.seconds[name] += d.Seconds()
	m.mu.Unlock()
}

// Gauge registers a gauge read at scrape time.
func (m *Metrics) Gauge(name string, fn func() float64) {
	m.mu.Lock()
	m.gauges = append(m.gauges, func() (string, float64) { return name, fn() })
	m.mu.Unlock()
}

func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprintln(w, "# HELP percorso_commands_total Commands handled, by command and outcome code.")
	fmt.Fprintln(w, "# TYPE percorso_commands_total counter")
	keys := make([][2]string, 0, len(m.commands))
	for k := range m.commands {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		fmt.Fprintf(w, "percorso_commands_total{command=%q,outcome=%q} %d\n", k[0], k[1], m.commands[k])
	}
	fmt.Fprintln(w, "# HELP percorso_command_seconds_total Time spent handling commands.")
	fmt.Fprintln(w, "# TYPE percorso_command_seconds_total counter")
	names := make([]string, 0, len(m.seconds))
	for n := range m.seconds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "percorso_command_seconds_total{command=%q} %g\n", n, m.seconds[n])
	}
	for _, g := range m.gauges {
		name, v := g()
		fmt.Fprintf(w, "# TYPE %s gauge\n%s %g\n", name, name, v)
	}
}
