package privacy

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// Distinct HKDF labels give independent keys from one master key: learning
// the pseudonym key (say, through an analytics tool that recomputes
// pseudonyms) must not unwrap data keys, and the other way round. The version
// suffix leaves room for rotation.
const (
	infoKeyEncryption = "percorso/privacy key-encryption key v1"
	infoPseudonym     = "percorso/privacy pseudonym key v1"
)

func deriveKey(master []byte, info string) ([]byte, error) {
	if err := checkMasterKey(master); err != nil {
		return nil, err
	}
	// No salt: the master key is already uniformly random, which is the case
	// RFC 5869 allows the salt to be omitted in.
	k, err := hkdf.Key(sha256.New, master, nil, info, 32)
	if err != nil {
		return nil, fmt.Errorf("privacy: derive key: %w", err)
	}
	return k, nil
}
