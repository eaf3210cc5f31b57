package ui

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// table is a page's data as rows and columns. The same value is rendered
// as the HTML table behind a chart and as the CSV export, so the download
// always holds exactly what the page shows. Column ids are the API's field
// names, so a CSV reads like the API's CSV of the same report.
type table struct {
	ID      string
	Caption string
	Cols    []column
	Rows    []row
}

type column struct {
	ID      string
	Label   string
	Numeric bool
}

type row struct {
	Key   string
	Cells []cell
}

// cell keeps the value for machines (CSV, data-value: minutes, counts, ISO
// dates) apart from the text for people (hours, grouped digits, local
// dates). Href links the cell to another page.
type cell struct {
	Value      string
	Text       string
	Href       string
	Suppressed bool
}

func textCell(s string) cell { return cell{Value: s, Text: s} }

// enumCell shows a translated value and exports the code.
func enumCell(code, shown string) cell { return cell{Value: code, Text: shown} }

func countCell(l lang, n int) cell { return cell{Value: strconv.Itoa(n), Text: l.Int(n)} }

// optCountCell is a count that may have been suppressed (nil): the CSV gets
// an empty field, as the API's does.
func optCountCell(l lang, n *int) cell {
	if n == nil {
		return cell{Text: l.T("suppressed"), Suppressed: true}
	}
	return countCell(l, *n)
}

func minutesCell(l lang, m int) cell { return cell{Value: strconv.Itoa(m), Text: l.Hours(m)} }

func timeCell(l lang, t *time.Time) cell {
	if t == nil {
		return cell{}
	}
	return cell{Value: t.UTC().Format(time.RFC3339), Text: l.Time(*t)}
}

func dateCell(l lang, iso *string) cell {
	if iso == nil {
		return cell{}
	}
	return cell{Value: *iso, Text: l.Date(*iso)}
}

// column finds a column's index by id; -1 if absent.
func (t *table) column(id string) int {
	for i, c := range t.Cols {
		if c.ID == id {
			return i
		}
	}
	return -1
}

// writeCSV writes the table as RFC 4180 CSV with a header of column ids.
func writeCSV(w http.ResponseWriter, t *table) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+t.ID+`.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	head := make([]string, len(t.Cols))
	for i, c := range t.Cols {
		head[i] = c.ID
	}
	cw.Write(head)
	for _, r := range t.Rows {
		rec := make([]string, len(r.Cells))
		for i, c := range r.Cells {
			rec[i] = safeCell(c.Value)
		}
		cw.Write(rec)
	}
	cw.Flush()
}

// safeCell keeps free text from being read as a formula by the spreadsheet
// a CSV is opened in (OWASP "CSV injection"). Negative numbers never occur
// in these tables, so a leading minus is always text.
func safeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
