package storetest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/taxcode"
	"github.com/percorso/percorso/domain/workerpath"
)

// Realistic values, so the wire format is exercised as production uses it:
// Emilia-Romagna office codes, the regional catalogue's services and
// minutes, valid tax codes.
const (
	office    = "BO01"
	operator  = "op.bianchi"
	catalogue = workerpath.CatalogueVersion
)

// base is the suite's clock: nanoseconds included, so a store that rounds
// times is caught.
var base = time.Date(2025, time.March, 10, 9, 30, 0, 123456789, time.UTC)

// HostTaxCode is the traineeship host of the suite's events: a sole
// trader's codice fiscale, a person's code like the worker's.
const HostTaxCode = "VRDGPP70M12A944D"

// TaxCode returns a valid, random codice fiscale, so every test has its own
// worker (and its own data key to erase).
func TaxCode() string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	const months = "ABCDEHLMPRST"
	day := 1 + rand.IntN(28)
	if rand.IntN(2) == 0 {
		day += 40
	}
	b := make([]byte, 0, 16)
	for range 6 {
		b = append(b, letters[rand.IntN(len(letters))])
	}
	b = fmt.Appendf(b, "%02d%c%02d%c%03d", rand.IntN(100), months[rand.IntN(len(months))], day,
		letters[rand.IntN(len(letters))], rand.IntN(1000))
	c, err := taxcode.CheckChar(string(b))
	if err != nil {
		panic(err)
	}
	return string(append(b, c))
}

// Person returns personal data with a fresh tax code and names distinctive
// enough to be searched for in raw stream bytes.
func Person() workerpath.Person {
	return workerpath.Person{
		TaxCode:          TaxCode(),
		GivenName:        "Maria Addolorata",
		FamilyName:       "Scagliarini-D'Ambrosio",
		BirthDate:        workerpath.MustDate("1979-11-23"),
		Disability:       true,
		MediatorLanguage: "ar",
	}
}

func meta(pathID string, at time.Time) workerpath.Meta {
	return workerpath.Meta{PathID: pathID, Office: office, Operator: operator, RecordedAt: at}
}

// TakenInCharge opens a path for the worker.
func TakenInCharge(pathID, workerRef string, who workerpath.Person, at time.Time) *workerpath.TakenInCharge {
	return &workerpath.TakenInCharge{
		Meta:      meta(pathID, at),
		WorkerRef: workerRef,
		Worker:    who,
		Category:  "a",
		Support: workerpath.Support{Kind: workerpath.SupportCIG, AgreementCode: "ACC-ER-2025-0143",
			From: workerpath.MustDate("2025-01-13"), To: workerpath.MustDate("2025-12-31")},
		TakenAt:          at.Add(-15 * time.Minute),
		CatalogueVersion: catalogue,
	}
}

// SessionDelivered is an individual guidance interview (service 3).
func SessionDelivered(pathID string, at time.Time) *workerpath.SessionDelivered {
	return &workerpath.SessionDelivered{
		Meta:            meta(pathID, at),
		SessionID:       command.NewUUID(),
		Service:         3,
		DeliveredAt:     at.Add(-time.Hour),
		StandardMinutes: 60,
		CreditedMinutes: 60,
		ActualMinutes:   70,
		MediatorPresent: true,
		OutsideSupport:  true,

		CatalogueVersion: catalogue,
	}
}

// GroupSession is one participant's share of a job-search workshop
// (service 6) held for a group below the minimum size, with its
// justification.
func GroupSession(pathID, groupID string, size int, at time.Time) *workerpath.SessionDelivered {
	return &workerpath.SessionDelivered{
		Meta:              meta(pathID, at),
		SessionID:         command.NameUUID(groupID, pathID),
		Service:           6,
		DeliveredAt:       at.Add(-4 * time.Hour),
		StandardMinutes:   300,
		CreditedMinutes:   300,
		ActualMinutes:     290,
		GroupID:           groupID,
		GroupSize:         size,
		Justification:     "laboratorio avviato con iscritti insufficienti su autorizzazione del responsabile",
		OutsideGroupRange: size < 6 || size > 15,
		CatalogueVersion:  catalogue,
	}
}

// AllTypes returns one event of every type, in an order a path could have
// them, the first being TakenInCharge for the worker.
func AllTypes(pathID, workerRef string, who workerpath.Person) []workerpath.Event {
	at := func(i int) time.Time { return base.Add(time.Duration(i) * 24 * time.Hour) }
	traineeship := command.NewUUID()
	session := SessionDelivered(pathID, at(1))
	verification := SessionDelivered(pathID, at(6))
	verification.Service, verification.StandardMinutes, verification.CreditedMinutes, verification.ActualMinutes = 12, 60, 60, 45
	evs := []workerpath.Event{
		TakenInCharge(pathID, workerRef, who, at(0)),
		session,
		&workerpath.PactSigned{Meta: meta(pathID, at(2)), SignedAt: at(2).Add(-time.Hour),
			DIDOn: workerpath.MustDate("2025-03-11"), SessionID: session.SessionID},
		&workerpath.TraineeshipActivated{Meta: meta(pathID, at(3)), WorkerRef: workerRef, TraineeshipID: traineeship,
			HostTaxCode: HostTaxCode, StartsOn: workerpath.MustDate("2025-04-01"),
			EndsOn: workerpath.MustDate("2025-09-30"), ActivatedAt: at(3).Add(-2 * time.Hour)},
		&workerpath.NoShowRecorded{Meta: meta(pathID, at(4)), AppointmentAt: at(4).Add(-3 * time.Hour),
			Justified: false, Kind: workerpath.NoShowSecond, Unjustified: 2, ReportToINPS: true},
		&workerpath.RefusalReported{Meta: meta(pathID, at(5)), Kind: workerpath.RefusalJobOffer,
			At: at(5).Add(-time.Hour), Note: "offerta congrua rifiutata senza giustificato motivo"},
		verification,
		&workerpath.PathVerified{Meta: meta(pathID, at(6)), VerifiedAt: at(6).Add(-30 * time.Minute),
			Outcome: workerpath.OutcomePartiallyAchieved, Note: "competenze digitali da consolidare",
			SessionID: verification.SessionID},
		&workerpath.PathClosed{Meta: meta(pathID, at(7)), ClosedAt: at(7).Add(-time.Minute), Reason: workerpath.CloseReemployed},
		&workerpath.PersonalDataErased{Meta: meta(pathID, at(8)), WorkerRef: workerRef, ErasedAt: at(8)},
	}
	return evs
}
