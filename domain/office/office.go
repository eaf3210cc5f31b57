// Package office is the registry of the Centri per l'Impiego of
// Emilia-Romagna, the offices that take workers in charge.
//
// Every path, session and report names its office by code, so the registry
// is the one place that says which codes exist and which province each
// belongs to: commands refuse an unknown office before it reaches the event
// stream, and reports group by province without a lookup table of their own.
//
// The codes are this system's own: the province's two letters and the
// office's position within the province in the regional list. They are
// stored in events, so an office is never renumbered or removed; a new one
// takes the next free number of its province.
package office

import "fmt"

// Office is one Centro per l'Impiego.
type Office struct {
	Code         string `json:"code"`
	Name         string `json:"name"`
	Province     string `json:"province"`
	ProvinceName string `json:"province_name"`
}

// Province is one of the nine provinces of the region, by its vehicle
// registration letters (sigla).
type Province struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

var provinces = []Province{
	{"PC", "Piacenza"},
	{"PR", "Parma"},
	{"RE", "Reggio Emilia"},
	{"MO", "Modena"},
	{"BO", "Bologna"},
	{"FE", "Ferrara"},
	{"RA", "Ravenna"},
	{"FC", "Forlì-Cesena"},
	{"RN", "Rimini"},
}

// offices holds the names per province in the order of the regional list;
// the order gives the codes, so it must only ever be appended to.
var offices = build(map[string][]string{
	"PC": {"Piacenza", "Castel San Giovanni", "Fiorenzuola d'Arda"},
	"PR": {"Parma", "Fidenza", "Langhirano", "Borgo Val di Taro"},
	"RE": {"Reggio Emilia", "Correggio", "Guastalla", "Scandiano", "Montecchio Emilia", "Castelnovo ne' Monti"},
	"MO": {"Modena", "Carpi", "Mirandola", "Sassuolo", "Vignola", "Pavullo nel Frignano"},
	"BO": {"Bologna", "Imola", "San Lazzaro di Savena", "Zola Predosa", "Minerbio", "San Giovanni in Persiceto", "Porretta Terme"},
	"FE": {"Ferrara", "Cento", "Codigoro", "Argenta", "Copparo"},
	"RA": {"Ravenna", "Lugo", "Faenza"},
	"FC": {"Forlì", "Cesena", "Savignano sul Rubicone"},
	"RN": {"Rimini", "Riccione", "Novafeltria"},
})

var byCode = index(offices)

func build(names map[string][]string) []Office {
	var all []Office
	for _, p := range provinces {
		for i, name := range names[p.Code] {
			all = append(all, Office{
				Code:         fmt.Sprintf("%s%02d", p.Code, i+1),
				Name:         name,
				Province:     p.Code,
				ProvinceName: p.Name,
			})
		}
	}
	return all
}

func index(all []Office) map[string]Office {
	m := make(map[string]Office, len(all))
	for _, o := range all {
		m[o.Code] = o
	}
	return m
}

// Lookup finds an office by its exact code. Codes are not case-folded:
// they arrive from API requests and stored events, where a lowercase code
// is a client bug worth surfacing rather than hiding.
func Lookup(code string) (Office, bool) {
	o, ok := byCode[code]
	return o, ok
}

// All returns every office in registry order. The slice is a copy, so
// callers may sort or trim it freely.
func All() []Office {
	return append([]Office(nil), offices...)
}

// Provinces returns the provinces in registry order, as a copy.
func Provinces() []Province {
	return append([]Province(nil), provinces...)
}
