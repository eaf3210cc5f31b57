package access

import (
	"fmt"
	"slices"
)

// Role is what a principal is for; the policy is keyed on it.
type Role string

const (
	RoleOperator   Role = "operator"
	RoleSupervisor Role = "supervisor"
	RoleAuditor    Role = "auditor"
	RoleAnalyst    Role = "analyst"
	RoleAdmin      Role = "admin"
)

// Valid reports whether r is one of the roles the policy knows.
func (r Role) Valid() bool {
	_, ok := grants[r]
	return ok
}

// officeBound roles have no region-wide reach: an empty office list gives
// them nothing rather than everything, so a hand-built Principal fails
// closed.
func (r Role) officeBound() bool {
	return r == RoleOperator || r == RoleSupervisor
}

// Action is a family of API operations that share one authorization rule.
// Edges map each route or NATS endpoint to exactly one Action.
type Action string

const (
	// ActCommand: the commands that append events to a path of an office.
	ActCommand Action = "command"
	// ActErase: erase_worker. The edge passes "" as office: erasure acts
	// on a person, wherever their paths are.
	ActErase Action = "erase"
	// ActReadPath: the current state of a path, and path listings ("" as
	// office for a listing that names no office).
	ActReadPath Action = "read_path"
	// ActReadHistory: a path's event history and the verification of its
	// hash chain.
	ActReadHistory Action = "read_history"
	// ActReport: activity and compliance reports ("" for region-wide).
	ActReport Action = "report"
	// ActDeadlines: the deadline lists of an office; they name workers.
	ActDeadlines Action = "deadlines"
	// ActAdmin: rebuilding read models, skipping poison events and reading
	// the log of auditors' reads. Region-wide: the edge passes "".
	ActAdmin Action = "admin"
	// ActCatalogue: the service and office catalogues; any principal, any
	// office.
	ActCatalogue Action = "catalogue"
)

// Valid reports whether a is one of the actions the policy knows.
func (a Action) Valid() bool {
	switch a {
	case ActCommand, ActErase, ActReadPath, ActReadHistory, ActReport,
		ActDeadlines, ActAdmin, ActCatalogue:
		return true
	}
	return false
}

// grants is the policy: what each role may do, before the office scope is
// applied. Analysts get reports only, because every other read exposes
// single workers; auditors get every read except deadline lists, which are
// an operational tool full of personal data and add nothing to an audit.
var grants = map[Role][]Action{
	RoleOperator:   {ActCommand, ActReadPath, ActReadHistory, ActDeadlines, ActReport, ActCatalogue},
	RoleSupervisor: {ActReadPath, ActReadHistory, ActDeadlines, ActReport, ActCatalogue},
	RoleAuditor:    {ActReadPath, ActReadHistory, ActReport, ActCatalogue},
	RoleAnalyst:    {ActReport, ActCatalogue},
	RoleAdmin:      {ActCommand, ActErase, ActReadPath, ActReadHistory, ActReport, ActDeadlines, ActAdmin, ActCatalogue},
}

// Principal is an authenticated caller. Name is what events record as
// their actor.
type Principal struct {
	Name    string   `json:"name"`
	Role    Role     `json:"role"`
	Offices []string `json:"offices"`
}

// OfficeScope returns the offices the principal may act on: nil means all
// of them. Operators and supervisors always get a non-nil list, empty if
// they were given no office, so that nil can only ever mean region-wide.
func (p Principal) OfficeScope() []string {
	if len(p.Offices) > 0 {
		return slices.Clone(p.Offices)
	}
	if p.Role.officeBound() || !p.Role.Valid() {
		return []string{}
	}
	return nil
}

// Authorize returns nil if p may perform act on office, or an error
// wrapping ErrForbidden. office is the office the act concerns (the path's
// office, the office filter of a listing or report); "" means region-wide,
// which only principals without an office scope may ask for.
func (p Principal) Authorize(act Action, office string) error {
	if !act.Valid() {
		return fmt.Errorf("%w: unknown action %q", ErrForbidden, act)
	}
	if !slices.Contains(grants[p.Role], act) {
		return fmt.Errorf("%w: role %q may not %s", ErrForbidden, p.Role, act)
	}
	if act == ActCatalogue {
		return nil
	}
	scope := p.OfficeScope()
	switch {
	case scope == nil:
		return nil
	case office == "":
		return fmt.Errorf("%w: %s must name one of its offices", ErrForbidden, act)
	case !slices.Contains(scope, office):
		return fmt.Errorf("%w: office %s is outside the principal's offices", ErrForbidden, office)
	}
	return nil
}

// SeesPersonalData reports whether responses to p may carry names, tax
// codes, birth dates and disability in clear. Edges mask them otherwise.
func (p Principal) SeesPersonalData() bool {
	return p.Role.Valid() && p.Role != RoleAnalyst
}

// SuppressSmallCells reports whether report cells counting fewer than five
// workers must be blanked for p, so that aggregates cannot single anyone
// out.
func (p Principal) SuppressSmallCells() bool {
	return p.Role == RoleAnalyst || !p.Role.Valid()
}

// ReadsAudited reports whether p's reads must themselves be recorded:
// auditors see every worker's full history, so who looked at what is kept.
func (p Principal) ReadsAudited() bool {
	return p.Role == RoleAuditor
}
