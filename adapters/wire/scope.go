package wire

import (
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/fault"
	"github.com/percorso/percorso/domain/office"
)

// Granted checks the role may perform act at all, before any parameter is
// looked at: a caller that may not see a report learns nothing from its
// validation errors.
func Granted(p access.Principal, act access.Action) error {
	o := ""
	if scope := p.OfficeScope(); len(scope) > 0 {
		o = scope[0]
	}
	return Authorize(p, act, o)
}

// Scope is the offices a query covers: the one it names, which must exist
// and be the principal's, or else every office the principal has (nil:
// region-wide). The API's report routes and the dashboard share it.
func Scope(p access.Principal, act access.Action, code string) ([]string, error) {
	if code != "" {
		if _, ok := office.Lookup(code); !ok {
			return nil, fault.Rulef(fault.CodeUnknownOffice, "unknown office %q", code).OnField("office")
		}
		if err := Authorize(p, act, code); err != nil {
			return nil, err
		}
		return []string{code}, nil
	}
	offices := p.OfficeScope()
	if len(offices) == 0 {
		// Region-wide principals pass; office-bound ones with no office
		// are refused here.
		return nil, Authorize(p, act, "")
	}
	for _, o := range offices {
		if err := Authorize(p, act, o); err != nil {
			return nil, err
		}
	}
	return offices, nil
}
