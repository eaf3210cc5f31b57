// Package access decides who is calling percorso and what they may do.
//
// Both edges, HTTP and NATS, carry the same bearer token and must give the
// same answer for it, so authentication and the authorization policy live
// here, away from any transport: an edge extracts the token, asks the
// Directory for the Principal, asks the Principal whether an Action on an
// office is allowed, and maps ErrUnauthenticated to 401 and ErrForbidden to
// 403 in its own error table.
//
// The principals file stores only SHA-256 hashes of tokens, so a leaked
// configuration does not leak credentials; tokens are long random strings,
// which is why a fast unsalted hash is enough. Office codes are checked by a
// function the caller passes in, so this package does not depend on the
// office registry.
//
// Scope follows the offices of the Centri per l'Impiego: operators and
// supervisors work on the paths of named offices and never region-wide,
// auditors, analysts and admins are region-wide unless their entry narrows
// them to a list of offices.
package access
