package workerpath

import (
	"time"
	_ "time/tzdata" // offices are in Europe/Rome whatever the host has installed
)

// Date is a civil date (YYYY-MM-DD) with no time zone: birth dates, support
// periods, DID dates. Its zero value means "not given".
type Date struct{ t time.Time }

const dateLayout = "2006-01-02"

// ParseDate reads YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return Date{}, err
	}
	return Date{t}, nil
}

// DateOf is the civil date of t in Europe/Rome (where the offices are).
func DateOf(t time.Time) Date {
	y, m, d := t.In(rome).Date()
	return Date{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

// MustDate is ParseDate for literals in tests and tables.
func MustDate(s string) Date {
	d, err := ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

func (d Date) IsZero() bool       { return d.t.IsZero() }
func (d Date) String() string     { return d.t.Format(dateLayout) }
func (d Date) Before(o Date) bool { return d.t.Before(o.t) }
func (d Date) After(o Date) bool  { return d.t.After(o.t) }
func (d Date) Time() time.Time    { return d.t }
func (d Date) AddDays(n int) Date { return Date{d.t.AddDate(0, 0, n)} }
func (d Date) Year() int          { return d.t.Year() }
func (d Date) Equal(o Date) bool  { return d.t.Equal(o.t) }
func (d Date) MarshalText() ([]byte, error) {
	if d.IsZero() {
		return []byte{}, nil
	}
	return []byte(d.String()), nil
}

func (d *Date) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = Date{}
		return nil
	}
	p, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

var rome = func() *time.Location {
	l, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		panic(err) // embedded by time/tzdata: cannot fail
	}
	return l
}()
