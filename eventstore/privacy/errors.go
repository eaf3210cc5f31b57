package privacy

import "errors"

var (
	// ErrNoKey means the worker has no data key yet: nothing was ever sealed
	// for them.
	ErrNoKey = errors.New("privacy: no data key for this worker")

	// ErrErased means the worker's data key was destroyed: their personal data
	// is gone for good and nothing new may be sealed for them.
	ErrErased = errors.New("privacy: personal data erased")

	// ErrTampered means a sealed value failed authentication: it was altered,
	// or it belongs to another worker.
	ErrTampered = errors.New("privacy: sealed value failed authentication (altered, or sealed for another worker)")

	// ErrMalformed means the input is not a sealed value this package wrote.
	ErrMalformed = errors.New("privacy: malformed sealed value")

	// ErrInvalidRef means a key reference cannot name a data key: it must be
	// 1 to 64 characters of [0-9A-Za-z_=-], as a pseudonym is.
	ErrInvalidRef = errors.New("privacy: invalid key reference")

	// ErrBadMasterKey means the master key is not 32 bytes written as 64
	// hexadecimal characters.
	ErrBadMasterKey = errors.New("privacy: bad master key")
)

// validRef keeps references usable both as a single NATS subject token and as
// a KV key, so every KeyStore accepts exactly the same set.
func validRef(ref string) bool {
	if len(ref) == 0 || len(ref) > 64 {
		return false
	}
	for i := 0; i < len(ref); i++ {
		c := ref[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '-', c == '=':
		default:
			return false
		}
	}
	return true
}
