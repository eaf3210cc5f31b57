package access

import (
	"encoding/json"
	"errors"
	"fmt"
)

// DevToken is a clear token of a development principal, to be shown once
// to whoever started the server.
type DevToken struct {
	Name  string
	Role  Role
	Token string
}

// GenerateDev creates one principal per role, so that a server started
// without --auth-file can be tried with every role at once. The operator
// and the supervisor work at offices[0]; the others are region-wide. It
// returns the principals file (hashes only) and the clear tokens.
func GenerateDev(offices []string) (file []byte, tokens []DevToken, err error) {
	if len(offices) == 0 || offices[0] == "" {
		return nil, nil, errors.New("access: dev principals need an office")
	}
	roles := []Role{RoleOperator, RoleSupervisor, RoleAuditor, RoleAnalyst, RoleAdmin}
	var f File
	for _, r := range roles {
		tok, err := NewToken()
		if err != nil {
			return nil, nil, err
		}
		p := Principal{Name: "dev-" + string(r), Role: r, Offices: []string{}}
		if r.officeBound() {
			p.Offices = []string{offices[0]}
		}
		f.Principals = append(f.Principals, FileEntry{Principal: p, TokenSHA256: HashToken(tok)})
		tokens = append(tokens, DevToken{Name: p.Name, Role: r, Token: tok})
	}
	file, err = json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("access: dev principals: %w", err)
	}
	return append(file, '\n'), tokens, nil
}
