package ui

import (
	"fmt"
	"html"
	"html/template"
	"strings"
)

// bar is one value of a chart. Missing marks a suppressed cell: no bar is
// drawn, and the label says why, so a gap is never read as a zero.
type bar struct {
	Label   string
	Value   float64
	Display string
	Missing bool
	// Tick is the axis label of a column, on up to two lines, when Label
	// is too long for it ("feb" over "2010").
	Tick [2]string
}

// chart is a bar chart drawn on the server as inline SVG: no script, no
// chart library to vendor and keep up to date, and it prints. Columns
// (vertical bars) are for months, where the eye reads a trend left to
// right; horizontal bars for named things, whose labels need room.
type chart struct {
	ID      string
	Title   string
	Bars    []bar
	Columns bool
	lang    lang
}

// Colours chosen for contrast on white: the bars 7.1:1, the text 16:1, the
// muted text 7:1, so they pass WCAG AA (3:1 for graphics, 4.5:1 for text).
const (
	barFill   = "#1d4f7a"
	textFill  = "#1b1b1b"
	mutedFill = "#595959"
	axisColor = "#6b6b6b"
)

// SVG renders the chart. Every text is escaped here: labels can come from
// data (office names) and the result is trusted by the template.
func (c chart) SVG() template.HTML {
	if len(c.Bars) == 0 {
		return template.HTML(`<p class="empty">` + html.EscapeString(c.lang.T("chart.empty")) + `</p>`)
	}
	var b strings.Builder
	if c.Columns {
		c.columns(&b)
	} else {
		c.rows(&b)
	}
	return template.HTML(b.String())
}

func (c chart) maxValue() float64 {
	m := 0.0
	for _, v := range c.Bars {
		if !v.Missing && v.Value > m {
			m = v.Value
		}
	}
	return m
}

// desc is the chart's text alternative: what it is, and its highest value.
func (c chart) desc() string {
	top := -1
	for i, v := range c.Bars {
		if !v.Missing && (top < 0 || v.Value > c.Bars[top].Value) {
			top = i
		}
	}
	if top < 0 {
		return fmt.Sprintf(c.lang.T("chart.desc"), len(c.Bars), "–", "–")
	}
	return fmt.Sprintf(c.lang.T("chart.desc"), len(c.Bars), c.Bars[top].Label, c.Bars[top].Display)
}

func (c chart) open(b *strings.Builder, w, h int) {
	id := html.EscapeString(c.ID)
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="%s-t %s-d" data-chart="%s">`,
		w, h, w, h, id, id, id)
	fmt.Fprintf(b, `<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, id, html.EscapeString(c.Title), id, html.EscapeString(c.desc()))
}

// truncate shortens a label to n runes with an ellipsis; the full text stays
// in the bar's tooltip and in the table.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// rows draws horizontal bars, one per line, label on the left, value at the
// end of the bar.
func (c chart) rows(b *strings.Builder) {
	const (
		width   = 620
		labelW  = 262
		valueW  = 78
		rowH    = 24
		barH    = 16
		top     = 6
		maxBarW = width - labelW - valueW
	)
	h := top*2 + rowH*len(c.Bars)
	c.open(b, width, h)
	m := c.maxValue()
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1"/>`, labelW, top, labelW, h-top, axisColor)
	for i, v := range c.Bars {
		y := top + i*rowH
		label := html.EscapeString(v.Label)
		fmt.Fprintf(b, `<g><title>%s: %s</title>`, label, html.EscapeString(v.Display))
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end" font-size="13" fill="%s">%s</text>`,
			labelW-8, y+rowH/2+4, textFill, html.EscapeString(truncate(v.Label, 36)))
		if v.Missing {
			fmt.Fprintf(b, `<text x="%d" y="%d" font-size="13" fill="%s" font-style="italic">%s</text></g>`,
				labelW+6, y+rowH/2+4, mutedFill, html.EscapeString(v.Display))
			continue
		}
		bw := 0
		if m > 0 {
			bw = int(float64(maxBarW) * v.Value / m)
		}
		if v.Value > 0 && bw < 2 {
			bw = 2
		}
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`, labelW, y+(rowH-barH)/2, bw, barH, barFill)
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="13" fill="%s">%s</text></g>`,
			labelW+bw+6, y+rowH/2+4, textFill, html.EscapeString(v.Display))
	}
	b.WriteString(`</svg>`)
}

// columns draws vertical bars along a time axis, values on top of the
// bars while they fit, and every k-th label when there are many.
func (c chart) columns(b *strings.Builder) {
	const (
		width  = 580
		height = 230
		left   = 8
		right  = 8
		top    = 22
		bottom = 40
	)
	plotW, plotH := width-left-right, height-top-bottom
	n := len(c.Bars)
	slot := float64(plotW) / float64(n)
	barW := min(slot*0.7, 48)
	every := (n + 11) / 12
	showValues := n <= 18
	c.open(b, width, height)
	m := c.maxValue()
	base := top + plotH
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1"/>`, left, base, width-right, base, axisColor)
	for i, v := range c.Bars {
		cx := float64(left) + slot*(float64(i)+0.5)
		fmt.Fprintf(b, `<g><title>%s: %s</title>`, html.EscapeString(v.Label), html.EscapeString(v.Display))
		if i%every == 0 {
			tick := v.Tick
			if tick[0] == "" {
				tick[0] = v.Label
			}
			for line, t := range tick {
				if t != "" {
					fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="12" fill="%s">%s</text>`,
						cx, base+16+line*14, textFill, html.EscapeString(t))
				}
			}
		}
		if v.Missing {
			fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="12" fill="%s" font-style="italic">%s</text></g>`,
				cx, base-6, mutedFill, html.EscapeString(v.Display))
			continue
		}
		bh := 0.0
		if m > 0 {
			bh = float64(plotH) * v.Value / m
		}
		if v.Value > 0 && bh < 2 {
			bh = 2
		}
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, cx-barW/2, float64(base)-bh, barW, bh, barFill)
		if showValues && v.Value > 0 {
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="12" fill="%s">%s</text>`,
				cx, float64(base)-bh-5, textFill, html.EscapeString(v.Display))
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
}
