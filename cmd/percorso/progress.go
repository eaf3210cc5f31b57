package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressBar draws a bar on a terminal and plain lines (every few
// seconds) anywhere else, so logs of scripted runs stay readable.
type progressBar struct {
	out   io.Writer
	tty   bool
	label string
	start time.Time
	last  time.Time
}

func newProgressBar(out io.Writer, label string) *progressBar {
	tty := false
	if f, ok := out.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressBar{out: out, tty: tty, label: label, start: time.Now()}
}

func (p *progressBar) update(done, remaining uint64) {
	now := time.Now()
	total := done + remaining
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 1e-3)
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	if p.tty {
		const width = 30
		fill := int(pct / 100 * width)
		fmt.Fprintf(p.out, "\r%s [%s%s] %5.1f%% %d/%d events %.0f/s ", p.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct, done, total, rate)
		return
	}
	if now.Sub(p.last) >= 5*time.Second || (remaining == 0 && !p.last.IsZero()) {
		p.last = now
		fmt.Fprintf(p.out, "%s: %d/%d events (%.1f%%), %.0f events/s\n", p.label, done, total, pct, rate)
	}
}

func (p *progressBar) finish() {
	if p.tty {
		fmt.Fprintln(p.out)
	}
}
