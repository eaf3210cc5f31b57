package taxcode

// CheckCompany accepts the tax code of a traineeship's host employer: an
// 11-digit partita IVA, or the 16-character codice fiscale a sole trader uses
// instead. The code must already be normalized (see Normalize).
func CheckCompany(code string) error {
	if err := precheck(code); err != nil {
		return err
	}
	switch len(code) {
	case 11:
		return checkElevenDigits(code)
	case 16:
		return checkPersonal(code)
	default:
		return invalid(reasonLength)
	}
}

// checkElevenDigits verifies an 11-digit code: a partita IVA or a person's
// provisional codice fiscale, which share the same check digit.
func checkElevenDigits(code string) error {
	zeros := true
	for i := 0; i < 11; i++ {
		if !isDigit(code[i]) {
			return invalid(reasonNotDigits)
		}
		if code[i] != '0' {
			zeros = false
		}
	}
	// All zeros passes the check digit but is the usual placeholder for
	// "unknown", never a real code.
	if zeros {
		return invalid(reasonAllZeros)
	}
	if int(code[10]-'0') != elevenDigitCheck(code[:10]) {
		return invalid(reasonCheckDigit)
	}
	return nil
}

// elevenDigitCheck computes the partita IVA check digit (a Luhn variant) of
// ten ASCII digits: digits in odd positions counting from one are added as
// they are, those in even positions doubled with 9 taken off above 9.
func elevenDigitCheck(first10 string) int {
	sum := 0
	for i := 0; i < 10; i++ {
		d := int(first10[i] - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return (10 - sum%10) % 10
}
