package access

import "errors"

var (
	// ErrUnauthenticated means no principal holds the presented token
	// (missing or unknown); edges answer 401.
	ErrUnauthenticated = errors.New("access: unauthenticated")

	// ErrForbidden means the principal is known but the act is outside its
	// role or offices; edges answer 403. It is returned wrapped with a short
	// reason that names the role, the action and the office code, never a
	// person.
	ErrForbidden = errors.New("access: forbidden")

	// ErrInvalidPrincipals wraps every rejection of a principals file, so a
	// caller can tell a bad configuration from an I/O failure.
	ErrInvalidPrincipals = errors.New("access: invalid principals")
)
