package taxcode

import "fmt"

// The check character weights. Characters in odd positions (1st, 3rd, ...,
// counting from one) use the irregular official table; a digit weighs the
// same as the letter in its place in the alphabet (0 as A, 1 as B, ...).
// Characters in even positions weigh their index: 0-9 for digits, 0-25 for
// letters.
var oddWeight = [26]int{
	1, 0, 5, 7, 9, 13, 15, 17, 19, 21, // A-J (and 0-9)
	2, 4, 18, 20, 11, 3, 6, 8, 12, 14, // K-T
	16, 10, 22, 25, 24, 23, // U-Z
}

// omocodeLetters replace the digits 0-9 when two people would otherwise get
// the same code.
const omocodeLetters = "LMNPQRSTUV"

// digitPositions are the seven positions of a 16-character code that hold
// digits, right-most first: the order in which omocodia replaces them.
var digitPositions = [7]int{14, 13, 12, 10, 9, 7, 6}

// months are the letters for January to December.
const months = "ABCDEHLMPRST"

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// digitValue decodes a digit position, accepting its omocodia letter.
func digitValue(c byte) (int, bool) {
	if isDigit(c) {
		return int(c - '0'), true
	}
	for i := 0; i < len(omocodeLetters); i++ {
		if omocodeLetters[i] == c {
			return i, true
		}
	}
	return 0, false
}

// CheckChar computes the check character of a 16-character codice fiscale
// from its first 15 characters, as written (omocodia letters included).
// It is exported so test-data generators build codes the same way the checks
// verify them.
func CheckChar(first15 string) (byte, error) {
	if len(first15) != 15 {
		return 0, invalid(reasonLength)
	}
	sum := 0
	for i := 0; i < 15; i++ {
		c := first15[i]
		var idx int
		switch {
		case isDigit(c):
			idx = int(c - '0')
		case isLetter(c):
			idx = int(c - 'A')
		default:
			return 0, invalid(reasonCharacter)
		}
		if i%2 == 0 { // an odd position counting from one
			sum += oddWeight[idx]
		} else {
			sum += idx
		}
	}
	return byte('A' + sum%26), nil
}

// CheckPerson accepts a worker's codice fiscale: 16 characters, or the
// 11-digit provisional code the agency assigns before the definitive one.
// The code must already be normalized (see Normalize).
func CheckPerson(code string) error {
	if err := precheck(code); err != nil {
		return err
	}
	switch len(code) {
	case 16:
		return checkPersonal(code)
	case 11:
		return checkElevenDigits(code)
	default:
		return invalid(reasonLength)
	}
}

func checkPersonal(code string) error {
	for i := 0; i < 6; i++ {
		if !isLetter(code[i]) {
			return invalid(reasonNameLetters)
		}
	}
	if _, ok := digitValue(code[6]); !ok {
		return invalid(reasonYear)
	}
	if _, ok := digitValue(code[7]); !ok {
		return invalid(reasonYear)
	}
	if !isMonth(code[8]) {
		return invalid(reasonMonth)
	}
	tens, ok1 := digitValue(code[9])
	units, ok2 := digitValue(code[10])
	// Women's codes add 40 to the day of birth.
	if day := tens*10 + units; !ok1 || !ok2 || !(day >= 1 && day <= 31 || day >= 41 && day <= 71) {
		return invalid(reasonDay)
	}
	if !isLetter(code[11]) {
		return invalid(reasonPlace)
	}
	for i := 12; i < 15; i++ {
		if _, ok := digitValue(code[i]); !ok {
			return invalid(reasonPlace)
		}
	}
	want, err := CheckChar(code[:15])
	if err != nil {
		return err
	}
	if code[15] != want {
		return invalid(reasonCheckChar)
	}
	return nil
}

func isMonth(c byte) bool {
	for i := 0; i < len(months); i++ {
		if months[i] == c {
			return true
		}
	}
	return false
}

// Omocode returns the level-n omocode of a valid 16-character codice fiscale:
// the same person's code with the n right-most digit positions replaced by
// their letters and the check character recomputed. Level 0 gives back the
// code with every position as a digit, so any omocode maps to its base code.
func Omocode(code string, n int) (string, error) {
	if n < 0 || n > len(digitPositions) {
		return "", fmt.Errorf("taxcode: omocode level %d outside 0-%d", n, len(digitPositions))
	}
	if err := CheckPerson(code); err != nil {
		return "", err
	}
	if len(code) != 16 {
		// Provisional codes are all digits with no omocodia.
		return "", invalid(reasonLength)
	}
	b := []byte(code)
	for i, p := range digitPositions {
		v, _ := digitValue(b[p]) // checked by CheckPerson
		if i < n {
			b[p] = omocodeLetters[v]
		} else {
			b[p] = byte('0' + v)
		}
	}
	c, err := CheckChar(string(b[:15]))
	if err != nil {
		return "", err
	}
	b[15] = c
	return string(b), nil
}
