package workerpath

import "time"

// Event is a fact recorded on a worker's path. Events are values in the past
// tense; their JSON is a published contract (docs/events/*.schema.json), so
// fields are only ever added.
type Event interface {
	EventType() string
	Header() *Meta
}

// Meta is what every event carries for an auditor: which path, where, who
// recorded it and when it was recorded (the occurred time is event-specific:
// delivered_at, signed_at...).
type Meta struct {
	PathID     string    `json:"path_id"`
	Office     string    `json:"office"`
	Operator   string    `json:"operator"`
	RecordedAt time.Time `json:"recorded_at"`
}

func (m *Meta) Header() *Meta { return m }

// Event type names, as in the ce-type header.
const (
	TypeTakenInCharge        = "TakenInCharge"
	TypeSessionDelivered     = "SessionDelivered"
	TypePactSigned           = "PactSigned"
	TypeTraineeshipActivated = "TraineeshipActivated"
	TypePathVerified         = "PathVerified"
	TypeNoShowRecorded       = "NoShowRecorded"
	TypeRefusalReported      = "RefusalReported"
	TypePathClosed           = "PathClosed"
	TypePersonalDataErased   = "PersonalDataErased"
)

// EventTypes lists every event type, in the order they were introduced.
var EventTypes = []string{
	TypeTakenInCharge, TypeSessionDelivered, TypePactSigned, TypeTraineeshipActivated,
	TypePathVerified, TypeNoShowRecorded, TypeRefusalReported, TypePathClosed,
	TypePersonalDataErased,
}

// NewEvent returns a zero event of the named type, for decoding.
func NewEvent(eventType string) (Event, bool) {
	switch eventType {
	case TypeTakenInCharge:
		return &TakenInCharge{}, true
	case TypeSessionDelivered:
		return &SessionDelivered{}, true
	case TypePactSigned:
		return &PactSigned{}, true
	case TypeTraineeshipActivated:
		return &TraineeshipActivated{}, true
	case TypePathVerified:
		return &PathVerified{}, true
	case TypeNoShowRecorded:
		return &NoShowRecorded{}, true
	case TypeRefusalReported:
		return &RefusalReported{}, true
	case TypePathClosed:
		return &PathClosed{}, true
	case TypePersonalDataErased:
		return &PersonalDataErased{}, true
	}
	return nil, false
}

// Person is the worker's personal data. It never travels in clear: on the
// stream it is sealed with the worker's own key (see eventstore), so that
// destroying the key erases the person and leaves the statistics intact.
type Person struct {
	TaxCode          string `json:"tax_code"`
	GivenName        string `json:"given_name"`
	FamilyName       string `json:"family_name"`
	BirthDate        Date   `json:"birth_date,omitzero"`
	Disability       bool   `json:"disability"`
	MediatorLanguage string `json:"mediator_language,omitempty"`
	// Erased is set when the data was asked for after the key was destroyed.
	Erased bool `json:"-"`
}

// Support is the income support the worker receives.
type Support struct {
	Kind          string `json:"kind"`
	AgreementCode string `json:"agreement_code,omitempty"`
	From          Date   `json:"from"`
	To            Date   `json:"to,omitzero"`
}

// Support kinds.
const (
	SupportCIG      = "cig_deroga"
	SupportMobilita = "mobilita_deroga"
	SupportCoCoPro  = "cocopro"
)

// TakenInCharge opens a path: the presa in carico.
type TakenInCharge struct {
	Meta
	// WorkerRef is the worker's pseudonym: a keyed hash of the tax code, the
	// same on every path of the worker, meaningless without the key.
	WorkerRef string `json:"worker_ref"`
	// Worker is filled in memory only; WorkerSealed is what is stored.
	Worker           Person    `json:"-"`
	WorkerSealed     string    `json:"worker_sealed"`
	Category         string    `json:"category"`
	Support          Support   `json:"support"`
	TakenAt          time.Time `json:"taken_at"`
	CatalogueVersion string    `json:"catalogue_version"`
}

// SessionDelivered records one delivered service.
type SessionDelivered struct {
	Meta
	SessionID       string    `json:"session_id"`
	Service         int       `json:"service"`
	DeliveredAt     time.Time `json:"delivered_at"`
	StandardMinutes int       `json:"standard_minutes"`
	CreditedMinutes int       `json:"credited_minutes"`
	ActualMinutes   int       `json:"actual_minutes"`
	MediatorPresent bool      `json:"mediator_present"`
	GroupID         string    `json:"group_id,omitempty"`
	GroupSize       int       `json:"group_size,omitempty"`
	// Justification explains a group outside 6–15; OutsideGroupRange flags it
	// for the compliance report.
	Justification     string `json:"justification,omitempty"`
	OutsideGroupRange bool   `json:"outside_group_range,omitempty"`
	TraineeshipID     string `json:"traineeship_id,omitempty"`
	// OutsideSupport flags a session outside the income-support period.
	OutsideSupport   bool   `json:"outside_support,omitempty"`
	CatalogueVersion string `json:"catalogue_version"`
}

// PactSigned records the patto di servizio and the DID date.
type PactSigned struct {
	Meta
	SignedAt  time.Time `json:"signed_at"`
	DIDOn     Date      `json:"did_on"`
	SessionID string    `json:"session_id,omitempty"`
}

// TraineeshipActivated records a new traineeship with its host employer.
// The host's tax code may be a person's (a sole trader's codice fiscale),
// so it is sealed like the worker's personal data, under the worker's key.
type TraineeshipActivated struct {
	Meta
	// WorkerRef is the worker's pseudonym, whose key seals the host's code.
	WorkerRef     string `json:"worker_ref"`
	TraineeshipID string `json:"traineeship_id"`
	// HostTaxCode is filled in memory only; HostSealed is what is stored.
	// HostErased: the worker's key is destroyed, and the code with it.
	HostTaxCode string    `json:"-"`
	HostErased  bool      `json:"-"`
	HostSealed  string    `json:"host_sealed"`
	StartsOn    Date      `json:"starts_on"`
	EndsOn      Date      `json:"ends_on,omitzero"`
	ActivatedAt time.Time `json:"activated_at"`
}

// Verification outcomes.
const (
	OutcomeAchieved          = "achieved"
	OutcomePartiallyAchieved = "partially_achieved"
	OutcomeNotAchieved       = "not_achieved"
)

// PathVerified records the outcome of the verification interview (service 12).
type PathVerified struct {
	Meta
	VerifiedAt time.Time `json:"verified_at"`
	Outcome    string    `json:"outcome"`
	Note       string    `json:"note,omitempty"`
	SessionID  string    `json:"session_id"`
}

// No-show kinds: the first and second unjustified absence, later ones, and a
// justified absence (to re-contact).
const (
	NoShowFirst     = "first"
	NoShowSecond    = "second"
	NoShowRepeated  = "repeated"
	NoShowJustified = "justified"
)

// NoShowRecorded records a missed appointment.
type NoShowRecorded struct {
	Meta
	AppointmentAt time.Time `json:"appointment_at"`
	Justified     bool      `json:"justified"`
	Reason        string    `json:"reason,omitempty"`
	Kind          string    `json:"kind"`
	// Unjustified counts the unjustified no-shows on the path so far.
	Unjustified int `json:"unjustified"`
	// ReportToINPS is set from the second unjustified no-show on: the payer
	// must be told (segnalazione).
	ReportToINPS bool `json:"report_to_inps"`
}

// Refusal kinds.
const (
	RefusalConvocation = "convocation"
	RefusalPath        = "path"
	RefusalJobOffer    = "job_offer"
)

// RefusalReported records an unjustified refusal, reported to INPS.
type RefusalReported struct {
	Meta
	Kind string    `json:"kind"`
	At   time.Time `json:"at"`
	Note string    `json:"note,omitempty"`
}

// Closure reasons.
const (
	CloseReemployed   = "reemployed"
	CloseSupportEnded = "support_ended"
	CloseDecadenza    = "decadenza"
	CloseTransferred  = "transferred"
	CloseWithdrawn    = "withdrawn"
)

// PathClosed ends the path.
type PathClosed struct {
	Meta
	ClosedAt time.Time `json:"closed_at"`
	Reason   string    `json:"reason"`
}

// PersonalDataErased records that the worker's key was destroyed: the
// personal data on every earlier event can no longer be read.
type PersonalDataErased struct {
	Meta
	WorkerRef string    `json:"worker_ref"`
	ErasedAt  time.Time `json:"erased_at"`
}

func (*TakenInCharge) EventType() string        { return TypeTakenInCharge }
func (*SessionDelivered) EventType() string     { return TypeSessionDelivered }
func (*PactSigned) EventType() string           { return TypePactSigned }
func (*TraineeshipActivated) EventType() string { return TypeTraineeshipActivated }
func (*PathVerified) EventType() string         { return TypePathVerified }
func (*NoShowRecorded) EventType() string       { return TypeNoShowRecorded }
func (*RefusalReported) EventType() string      { return TypeRefusalReported }
func (*PathClosed) EventType() string           { return TypePathClosed }
func (*PersonalDataErased) EventType() string   { return TypePersonalDataErased }
