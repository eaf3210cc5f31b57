package workerpath

// CatalogueVersion names the edition of the service catalogue the rules and
// standard minutes come from. Every SessionDelivered records it, so figures
// stay explainable if the region ever revises the catalogue.
const CatalogueVersion = "ER-2009-A3"

// Repeat says how often a service may be delivered on one path. Limits count
// delivered sessions only.
type Repeat string

const (
	Repeatable         Repeat = "repeatable"
	OncePerPath        Repeat = "once_per_path"
	AtMostThree        Repeat = "at_most_3"
	OncePerTraineeship Repeat = "once_per_traineeship"
	groupMin, groupMax        = 6, 15
	disabilityPercent         = 120
)

// Service is one entry of the regional catalogue (Allegato 3).
type Service struct {
	Code            int    `json:"code"`
	LabelIT         string `json:"label_it"`
	LabelEN         string `json:"label_en"`
	StandardMinutes int    `json:"standard_minutes"`
	Repeat          Repeat `json:"repeat"`
	MaxDeliveries   int    `json:"max_deliveries,omitempty"`
	Group           bool   `json:"group"`
	GroupMin        int    `json:"group_min,omitempty"`
	GroupMax        int    `json:"group_max,omitempty"`
}

var catalogue = [...]Service{
	{Code: 1, LabelIT: "Erogazione di informazioni", LabelEN: "Information and referral", StandardMinutes: 30, Repeat: Repeatable},
	{Code: 2, LabelIT: "Accesso ai servizi", LabelEN: "Access to services (registration, DID, service pact)", StandardMinutes: 30, Repeat: OncePerPath, MaxDeliveries: 1},
	{Code: 3, LabelIT: "Colloquio orientativo individuale", LabelEN: "Individual guidance interview", StandardMinutes: 60, Repeat: Repeatable},
	{Code: 4, LabelIT: "Colloquio orientativo di gruppo", LabelEN: "Group guidance session", StandardMinutes: 240, Repeat: Repeatable, Group: true, GroupMin: groupMin, GroupMax: groupMax},
	{Code: 5, LabelIT: "Consulenza orientativa", LabelEN: "Career counselling", StandardMinutes: 90, Repeat: AtMostThree, MaxDeliveries: 3},
	{Code: 6, LabelIT: "Seminari-laboratori per la ricerca attiva del lavoro", LabelEN: "Active job-search workshops", StandardMinutes: 300, Repeat: AtMostThree, MaxDeliveries: 3, Group: true, GroupMin: groupMin, GroupMax: groupMax},
	{Code: 7, LabelIT: "Attivazione di tirocini", LabelEN: "Traineeship activation", StandardMinutes: 720, Repeat: OncePerTraineeship},
	{Code: 8, LabelIT: "Percorsi personalizzati di accompagnamento al lavoro / ricollocazione", LabelEN: "Personalised job-placement support", StandardMinutes: 1200, Repeat: Repeatable},
	{Code: 9, LabelIT: "Accesso all'intermediazione", LabelEN: "Access to job matching (pre-selection)", StandardMinutes: 60, Repeat: Repeatable},
	{Code: 10, LabelIT: "Incontro domanda-offerta", LabelEN: "Job matching (shortlists to employers)", StandardMinutes: 300, Repeat: Repeatable},
	{Code: 11, LabelIT: "Iscrizione alle liste di mobilità", LabelEN: "Registration on the mobility lists", StandardMinutes: 30, Repeat: OncePerPath, MaxDeliveries: 1},
	{Code: 12, LabelIT: "Colloquio di verifica", LabelEN: "Verification interview", StandardMinutes: 60, Repeat: Repeatable},
}

// Services returns the catalogue in code order.
func Services() []Service {
	out := make([]Service, len(catalogue))
	copy(out, catalogue[:])
	return out
}

// LookupService returns the service with the given code.
func LookupService(code int) (Service, bool) {
	if code < 1 || code > len(catalogue) {
		return Service{}, false
	}
	return catalogue[code-1], true
}

// CreditedMinutes is what a delivered service counts for: its standard
// minutes, plus 20% for a worker with a disability, whatever the actual length.
func CreditedMinutes(s Service, disability bool) int {
	if disability {
		return s.StandardMinutes * disabilityPercent / 100
	}
	return s.StandardMinutes
}

// Service codes the rules refer to by name.
const (
	SvcAccess       = 2
	SvcIndividual   = 3
	SvcGroup        = 4
	SvcCounselling  = 5
	SvcWorkshop     = 6
	SvcTraineeship  = 7
	SvcPlacement    = 8
	SvcMobilityList = 11
	SvcVerification = 12
)
