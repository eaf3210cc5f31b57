package workerpath_test

import (
	"encoding/json"
	"testing"
	"time"

	wp "github.com/percorso/percorso/domain/workerpath"
)

func TestParseDate(t *testing.T) {
	for _, s := range []string{"2011-06-30", "2000-01-01", "2012-02-29", "1980-12-31"} {
		d, err := wp.ParseDate(s)
		if err != nil {
			t.Errorf("ParseDate(%q): %v", s, err)
			continue
		}
		if d.String() != s || d.IsZero() {
			t.Errorf("ParseDate(%q) = %s", s, d)
		}
	}
	for _, s := range []string{"", "2011-02-30", "2011-02-29", "2011-13-01", "2011-6-30", "30/06/2011",
		"2011-06-30T00:00:00Z", " 2011-06-30", "2011-06-30 ", "20110630", "2011-06-3x"} {
		if d, err := wp.ParseDate(s); err == nil {
			t.Errorf("ParseDate(%q) = %s, want an error", s, d)
		}
	}
}

func TestMustDatePanicsOnBadInput(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustDate(\"2011-02-30\") did not panic")
		}
	}()
	wp.MustDate("2011-02-30")
}

func TestDateJSON(t *testing.T) {
	type doc struct {
		On    wp.Date `json:"on"`
		Maybe wp.Date `json:"maybe,omitzero"`
	}
	b, err := json.Marshal(doc{On: wp.MustDate("2011-06-30")})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"on":"2011-06-30"}` {
		t.Errorf("Marshal = %s", b)
	}
	b, err = json.Marshal(doc{})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"on":""}` {
		t.Errorf("Marshal of zero = %s", b)
	}

	var d doc
	if err := json.Unmarshal([]byte(`{"on":"2010-12-01","maybe":""}`), &d); err != nil {
		t.Fatal(err)
	}
	if !d.On.Equal(wp.MustDate("2010-12-01")) || !d.Maybe.IsZero() {
		t.Errorf("Unmarshal = %+v", d)
	}
	for _, bad := range []string{`{"on":"2010-12-32"}`, `{"on":"01/12/2010"}`, `{"on":20101201}`, `{"on":"2010-12-01T00:00:00Z"}`} {
		var d doc
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("Unmarshal(%s) = %+v, want an error", bad, d)
		}
	}
}

// DateOf reads the civil date in Italy, where the offices are: late evening
// UTC is already tomorrow in Bologna, by one hour in winter and two in summer.
func TestDateOf(t *testing.T) {
	for _, c := range []struct {
		at   string
		want string
	}{
		{"2011-01-10T22:59:59Z", "2011-01-10"},
		{"2011-01-10T23:00:00Z", "2011-01-11"},
		{"2011-06-30T21:59:59Z", "2011-06-30"},
		{"2011-06-30T22:00:00Z", "2011-07-01"},
		{"2011-06-30T23:30:00+02:00", "2011-06-30"},
		{"2011-12-31T23:30:00Z", "2012-01-01"},
	} {
		at, err := time.Parse(time.RFC3339, c.at)
		if err != nil {
			t.Fatal(err)
		}
		if got := wp.DateOf(at).String(); got != c.want {
			t.Errorf("DateOf(%s) = %s, want %s", c.at, got, c.want)
		}
	}
}

func TestDateArithmetic(t *testing.T) {
	a, b := wp.MustDate("2011-02-28"), wp.MustDate("2011-03-01")
	if !a.Before(b) || a.After(b) || !b.After(a) || a.Equal(b) || !a.Equal(wp.MustDate("2011-02-28")) {
		t.Error("Before/After/Equal disagree with the calendar")
	}
	if got := a.AddDays(1); !got.Equal(b) {
		t.Errorf("AddDays(1) = %s", got)
	}
	if got := wp.MustDate("2012-02-28").AddDays(1).String(); got != "2012-02-29" {
		t.Errorf("leap day: %s", got)
	}
	if a.Year() != 2011 || a.Time().Location() != time.UTC {
		t.Errorf("Year %d, location %v", a.Year(), a.Time().Location())
	}
	var zero wp.Date
	if !zero.IsZero() || wp.MustDate("2000-01-01").IsZero() {
		t.Error("IsZero is wrong")
	}
}
