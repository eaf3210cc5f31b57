package ui

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	// The offices are in Italy and their dates are Rome's, on any server.
	_ "time/tzdata"

	"github.com/percorso/percorso/domain/office"
	"github.com/percorso/percorso/domain/workerpath"
)

// lang is the language of a page. Italian is the default: the offices
// work in it, and the region's own terms (patto, decadenza) stay Italian in
// the English pages too.
type lang string

const (
	langIT lang = "it"
	langEN lang = "en"
)

const langCookie = "percorso_ui_lang"

var rome = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		return time.UTC
	}
	return loc
}()

// pickLang chooses the page language: ?lang= first (and remembered in a
// cookie, so a choice survives following links), then that cookie, then
// the browser's Accept-Language; Italian otherwise.
func pickLang(w http.ResponseWriter, r *http.Request) lang {
	if l, ok := parseLang(r.URL.Query().Get("lang")); ok {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: string(l), Path: prefix, HttpOnly: true,
			Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: 365 * 24 * 3600})
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil {
		if l, ok := parseLang(c.Value); ok {
			return l
		}
	}
	return acceptLanguage(r.Header.Get("Accept-Language"))
}

func parseLang(s string) (lang, bool) {
	switch strings.ToLower(s) {
	case "it":
		return langIT, true
	case "en":
		return langEN, true
	}
	return "", false
}

// acceptLanguage returns the supported language the header prefers most.
func acceptLanguage(h string) lang {
	best, bestQ := langIT, 0.0
	for part := range strings.SplitSeq(h, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			q = f
		}
		primary, _, _ := strings.Cut(tag, "-")
		if l, ok := parseLang(primary); ok && q > bestQ {
			best, bestQ = l, q
		}
	}
	return best
}

// T translates a message id; an id without a translation shows as itself,
// which a test catches.
func (l lang) T(id string) string {
	m, ok := messages[id]
	if !ok {
		return id
	}
	if l == langEN {
		return m[1]
	}
	return m[0]
}

// Int formats a count with the language's digit grouping.
func (l lang) Int(n int) string {
	sep := "."
	if l == langEN {
		sep = ","
	}
	return group(strconv.Itoa(n), sep)
}

func group(digits, sep string) string {
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteString(sep)
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Hours formats minutes as hours with one decimal: the region accounts in
// hours, the read models in minutes.
func (l lang) Hours(minutes int) string {
	tenths := int(math.Round(float64(minutes) / 6))
	whole, dec, point := l.Int(tenths/10), strconv.Itoa(tenths%10), ","
	if l == langEN {
		point = "."
	}
	return whole + point + dec
}

// Date formats a civil date (YYYY-MM-DD) the local way.
func (l lang) Date(iso string) string {
	t, err := time.Parse("2006-01-02", iso)
	if err != nil {
		return iso
	}
	if l == langEN {
		return t.Format("2 Jan 2006")
	}
	return t.Format("02/01/2006")
}

// Time formats an instant in Rome time.
func (l lang) Time(t time.Time) string {
	t = t.In(rome)
	if l == langEN {
		return t.Format("2 Jan 2006 15:04")
	}
	return t.Format("02/01/2006 15:04")
}

var monthsIT = [...]string{"gen", "feb", "mar", "apr", "mag", "giu", "lug", "ago", "set", "ott", "nov", "dic"}

// Month formats a report month (YYYY-MM) short, for axis labels.
func (l lang) Month(ym string) string {
	t, err := time.Parse("2006-01", ym)
	if err != nil {
		return ym
	}
	if l == langEN {
		return t.Format("Jan 2006")
	}
	return monthsIT[t.Month()-1] + " " + strconv.Itoa(t.Year())
}

// monthTick is the axis label of a month column: the month, and the year
// under the first column and under every January.
func (l lang) monthTick(ym string, first bool) [2]string {
	t, err := time.Parse("2006-01", ym)
	if err != nil {
		return [2]string{ym, ""}
	}
	m := monthsIT[t.Month()-1]
	if l == langEN {
		m = t.Format("Jan")
	}
	year := ""
	if first || t.Month() == time.January {
		year = strconv.Itoa(t.Year())
	}
	return [2]string{m, year}
}

// Service is a catalogue service as "05 Consulenza orientativa".
func (l lang) Service(code int) string {
	s, ok := workerpath.LookupService(code)
	if !ok {
		return strconv.Itoa(code)
	}
	label := s.LabelIT
	if l == langEN {
		label = s.LabelEN
	}
	return serviceCode(code) + " " + label
}

func serviceCode(code int) string {
	if code < 10 {
		return "0" + strconv.Itoa(code)
	}
	return strconv.Itoa(code)
}

// Office is "BO01 Bologna".
func (l lang) Office(code string) string {
	if o, ok := office.Lookup(code); ok {
		return code + " " + o.Name
	}
	return code
}

// Province is the province's name for its code.
func (l lang) Province(code string) string {
	for _, p := range office.Provinces() {
		if p.Code == code {
			return p.Name
		}
	}
	return code
}

// Enum translates a value of a closed vocabulary (category, support kind,
// status, reason...) by its kind and value; unknown values show as they are.
func (l lang) Enum(kind, value string) string {
	if _, ok := messages[kind+"."+value]; ok {
		return l.T(kind + "." + value)
	}
	return value
}

// messages holds every text of the pages: [Italian, English].
var messages = map[string][2]string{
	"app.name":                 {"percorso", "percorso"},
	"app.tagline":              {"Cruscotto regionale dei percorsi di presa in carico", "Regional dashboard of the take-in-charge paths"},
	"nav.region":               {"Panoramica", "Overview"},
	"nav.office":               {"Ufficio", "Office"},
	"nav.compliance":           {"Conformità", "Compliance"},
	"nav.signout":              {"Esci", "Sign out"},
	"nav.language":             {"English", "Italiano"},
	"nav.skip":                 {"Vai al contenuto", "Skip to content"},
	"nav.signedin":             {"Collegato come", "Signed in as"},
	"signin.title":             {"Accesso", "Sign in"},
	"signin.intro":             {"Inserisci il token di accesso che usi con le API.", "Enter the access token you use with the API."},
	"signin.token":             {"Token di accesso", "Access token"},
	"signin.submit":            {"Accedi", "Sign in"},
	"signin.failed":            {"Token non riconosciuto.", "Token not recognised."},
	"signin.expired":           {"Il modulo è scaduto: riprova.", "The form expired: please try again."},
	"signin.toomany":           {"Troppi tentativi falliti: riprova tra un minuto.", "Too many failed attempts: try again in a minute."},
	"filter.from":              {"Dal", "From"},
	"filter.to":                {"Al", "To"},
	"filter.office":            {"Ufficio", "Office"},
	"filter.all":               {"Tutti", "All"},
	"filter.alloffices":        {"Tutti gli uffici visibili", "All offices in scope"},
	"filter.status":            {"Stato", "Status"},
	"filter.category":          {"Tipologia", "Worker type"},
	"filter.taxcode":           {"Codice fiscale", "Tax code"},
	"filter.kind":              {"Tipo di eccezione", "Exception kind"},
	"filter.asof":              {"Alla data", "As of"},
	"filter.apply":             {"Applica", "Apply"},
	"filter.choose":            {"Scegli un ufficio per vederne i percorsi e lo scadenziario.", "Choose an office to see its paths and deadline lists."},
	"scope.region":             {"Tutta la regione", "The whole region"},
	"scope.offices":            {"Uffici", "Offices"},
	"csv":                      {"Scarica CSV", "Download CSV"},
	"table.data":               {"Dati del grafico (tabella)", "Chart data (table)"},
	"suppressed":               {"<5", "<5"},
	"suppressed.note":          {"I valori sotto 5 lavoratori sono oscurati (\"<5\") per tutelare la riservatezza.", "Cells under 5 workers are suppressed (\"<5\") to protect privacy."},
	"chart.desc":               {"Grafico a barre, %d valori. Valore più alto: %s (%s). La tabella sotto il grafico riporta tutti i valori.", "Bar chart of %d values. Highest: %s (%s). The table below the chart gives every value."},
	"chart.empty":              {"Nessun dato nel periodo scelto.", "No data in the chosen period."},
	"region.title":             {"Panoramica", "Overview"},
	"region.kpi.intake":        {"Lavoratori presi in carico", "Workers taken in charge"},
	"region.kpi.paths":         {"Percorsi avviati", "Paths opened"},
	"region.kpi.served":        {"Lavoratori con servizi erogati", "Workers served"},
	"region.kpi.sessions":      {"Sessioni erogate", "Sessions delivered"},
	"region.kpi.hours":         {"Ore accreditate", "Credited hours"},
	"region.bymonth":           {"Andamento mensile", "By month"},
	"region.byprovince":        {"Per provincia", "By province"},
	"region.byoffice":          {"Per ufficio", "By office"},
	"region.mix":               {"Mix di servizi per tipologia di lavoratore", "Service mix per worker type"},
	"region.closures":          {"Chiusure dei percorsi", "Path closures"},
	"fig.activity.month":       {"Sessioni e ore accreditate per mese", "Sessions and credited hours by month"},
	"fig.province":             {"Ore accreditate e lavoratori presi in carico, per provincia", "Credited hours and workers taken in charge, by province"},
	"fig.office":               {"Ore accreditate e lavoratori presi in carico, per ufficio", "Credited hours and workers taken in charge, by office"},
	"chart.intake.month":       {"Lavoratori presi in carico per mese", "Workers taken in charge by month"},
	"chart.sessions.month":     {"Sessioni erogate per mese", "Sessions delivered by month"},
	"chart.hours.month":        {"Ore accreditate per mese", "Credited hours by month"},
	"chart.hours.province":     {"Ore accreditate per provincia", "Credited hours by province"},
	"chart.intake.province":    {"Lavoratori presi in carico per provincia", "Workers taken in charge by province"},
	"chart.hours.office":       {"Ore accreditate per ufficio", "Credited hours by office"},
	"chart.intake.office":      {"Lavoratori presi in carico per ufficio", "Workers taken in charge by office"},
	"chart.mix":                {"Sessioni per servizio, tipologia %s", "Sessions by service, worker type %s"},
	"chart.closures":           {"Percorsi chiusi per motivo", "Paths closed by reason"},
	"chart.deadlines":          {"Percorsi da seguire, per elenco", "Paths needing action, by list"},
	"chart.compliance.kind":    {"Eccezioni per tipo", "Exceptions by kind"},
	"chart.compliance.office":  {"Eccezioni per ufficio", "Exceptions by office"},
	"chart.path.services":      {"Ore accreditate per servizio", "Credited hours by service"},
	"col.month":                {"Mese", "Month"},
	"col.province":             {"Provincia", "Province"},
	"col.office":               {"Ufficio", "Office"},
	"col.category":             {"Tipologia", "Worker type"},
	"col.service":              {"Servizio", "Service"},
	"col.reason":               {"Motivo", "Reason"},
	"col.workers":              {"Lavoratori", "Workers"},
	"col.paths":                {"Percorsi", "Paths"},
	"col.sessions":             {"Sessioni", "Sessions"},
	"col.credited":             {"Ore accreditate", "Credited hours"},
	"col.actual":               {"Ore effettive", "Actual hours"},
	"col.intake_workers":       {"Presi in carico", "Taken in charge"},
	"col.intake_paths":         {"Percorsi avviati", "Paths opened"},
	"col.served":               {"Lavoratori serviti", "Workers served"},
	"col.worker":               {"Lavoratore", "Worker"},
	"col.taxcode":              {"Codice fiscale", "Tax code"},
	"col.support":              {"Sostegno", "Income support"},
	"col.taken_at":             {"Presa in carico", "Taken in charge"},
	"col.pact":                 {"Patto", "Service pact"},
	"col.noshows":              {"Assenze ingiustificate", "Unjustified no-shows"},
	"col.status":               {"Stato", "Status"},
	"col.since":                {"Dal", "Since"},
	"col.support_to":           {"Fine sostegno", "Support ends"},
	"col.list":                 {"Elenco", "List"},
	"col.count":                {"Percorsi", "Paths"},
	"col.kind":                 {"Tipo", "Kind"},
	"col.exceptions":           {"Eccezioni", "Exceptions"},
	"col.delivered_at":         {"Erogato il", "Delivered on"},
	"col.group_size":           {"Partecipanti", "Group size"},
	"col.justification":        {"Motivazione", "Justification"},
	"col.path":                 {"Percorso", "Path"},
	"col.delivered":            {"Erogazioni", "Deliveries"},
	"col.seq":                  {"N.", "Seq."},
	"col.time":                 {"Registrato il", "Recorded at"},
	"col.event":                {"Evento", "Event"},
	"col.details":              {"Dettagli", "Details"},
	"col.actor":                {"Operatore", "Recorded by"},
	"col.total":                {"Totale", "Total"},
	"office.title":             {"Ufficio", "Office"},
	"office.caseload":          {"Percorsi dell'ufficio", "The office's paths"},
	"office.deadlines":         {"Scadenziario", "Deadline lists"},
	"office.noDeadlines":       {"Il tuo ruolo non consulta lo scadenziario.", "Your role does not use the deadline lists."},
	"office.next":              {"Pagina successiva", "Next page"},
	"office.first":             {"Prima pagina", "First page"},
	"office.none":              {"Nessun percorso con questi filtri.", "No path matches these filters."},
	"office.shown":             {"mostrati %s su %s", "showing %s of %s"},
	"office.emptyList":         {"Nessun percorso in questo elenco.", "No path on this list."},
	"compliance.title":         {"Conformità", "Compliance"},
	"compliance.intro":         {"Sessioni che la Regione verifica a mano: gruppi fuori dal range 6–15, limiti di ripetizione raggiunti, sessioni fuori dal periodo di sostegno.", "Sessions the region checks by hand: groups outside 6–15, repeat limits reached, sessions outside the support period."},
	"compliance.rows":          {"Sessioni segnalate", "Flagged sessions"},
	"compliance.aggregateOnly": {"Il tuo ruolo vede solo i totali.", "Your role sees totals only."},
	"compliance.none":          {"Nessuna eccezione nel periodo scelto.", "No exception in the chosen period."},
	"path.title":               {"Percorso", "Path"},
	"path.facts":               {"Situazione attuale", "Current state"},
	"path.services":            {"Servizi erogati", "Services delivered"},
	"path.timeline":            {"Cronologia degli eventi", "Event timeline"},
	"path.verify":              {"Catena di integrità", "Integrity chain"},
	"path.verify.ok":           {"Verificata: %d eventi, catena integra.", "Verified: %d events, chain intact."},
	"path.verify.broken":       {"Catena NON integra: %d problemi.", "Chain BROKEN: %d problems."},
	"path.verify.head":         {"Hash dell'ultimo evento", "Head hash"},
	"path.worker":              {"Lavoratore", "Worker"},
	"path.erased":              {"dati personali cancellati", "personal data erased"},
	"path.category":            {"Tipologia", "Worker type"},
	"path.support":             {"Sostegno al reddito", "Income support"},
	"path.office":              {"Ufficio", "Office"},
	"path.status":              {"Stato", "Status"},
	"path.taken_at":            {"Presa in carico", "Taken in charge"},
	"path.pact":                {"Patto di servizio", "Service pact"},
	"path.pact.none":           {"non ancora firmato", "not signed yet"},
	"path.did":                 {"DID del", "DID of"},
	"path.credited":            {"Ore accreditate in totale", "Total credited hours"},
	"path.noshows":             {"Assenze (ingiustificate / giustificate)", "No-shows (unjustified / justified)"},
	"path.refusals":            {"Rifiuti segnalati", "Refusals reported"},
	"path.verification":        {"Verifica", "Verification"},
	"path.verification.none":   {"non ancora svolta", "not yet held"},
	"path.closed":              {"Chiuso il", "Closed on"},
	"path.disability":          {"Disabilità (+20% minuti accreditati)", "Disability (+20% credited minutes)"},
	"path.version":             {"Versione", "Version"},
	"yes":                      {"sì", "yes"},
	"no":                       {"no", "no"},
	"error.title":              {"Impossibile mostrare la pagina", "This page cannot be shown"},
	"error.400":                {"La richiesta non è valida.", "The request is not valid."},
	"error.403":                {"Il tuo ruolo o i tuoi uffici non consentono di vedere questa pagina.", "Your role or offices do not allow this page."},
	"error.404":                {"Pagina o percorso non trovati.", "Page or path not found."},
	"error.422":                {"Un parametro non è valido.", "A parameter is not valid."},
	"error.429":                {"Troppe richieste: riprova tra poco.", "Too many requests: try again shortly."},
	"error.500":                {"Errore interno.", "Internal error."},
	"error.503":                {"I dati non sono disponibili in questo momento.", "The data is unavailable right now."},
	"error.back":               {"Torna alla panoramica", "Back to the overview"},

	"category.a": {"a – sospensione breve", "a – short suspension"},
	"category.b": {"b – aggiornamento breve", "b – short update training"},
	"category.c": {"c – sospensione lunga, riqualificazione", "c – long suspension, requalification"},
	"category.d": {"d – mobilità", "d – mobilità (dismissed)"},
	"category.e": {"e – collaboratori a progetto", "e – project workers"},

	"support.cig_deroga":      {"CIG in deroga", "CIG in deroga"},
	"support.mobilita_deroga": {"Mobilità in deroga", "Mobilità in deroga"},
	"support.cocopro":         {"Indennità co.co.pro.", "Co.co.pro. allowance"},

	"status.open":   {"aperto", "open"},
	"status.closed": {"chiuso", "closed"},

	"reason.reemployed":    {"rientro al lavoro", "re-employed"},
	"reason.support_ended": {"fine del sostegno", "support ended"},
	"reason.decadenza":     {"decadenza", "decadenza (benefit revoked)"},
	"reason.transferred":   {"trasferimento ad altro CPI", "transferred to another office"},
	"reason.withdrawn":     {"rinuncia", "withdrawn"},

	"outcome.achieved":           {"obiettivi raggiunti", "objectives achieved"},
	"outcome.partially_achieved": {"obiettivi raggiunti in parte", "objectives partly achieved"},
	"outcome.not_achieved":       {"obiettivi non raggiunti", "objectives not achieved"},

	"deadline.without_pact":      {"Senza patto di servizio", "No service pact yet"},
	"deadline.first_no_show":     {"Prima assenza ingiustificata", "First no-show"},
	"deadline.second_no_show":    {"Seconda assenza: da segnalare all'INPS", "Second no-show: report to INPS"},
	"deadline.justified_absence": {"Assenza giustificata: ricontattare", "Justified absence: re-contact"},
	"deadline.verification_due":  {"Verifica da svolgere", "Verification due"},
	"deadline.support_ending":    {"Sostegno in scadenza (30 giorni)", "Support ending (30 days)"},

	"exception.group_size_out_of_range": {"Gruppo fuori range 6–15", "Group outside 6–15"},
	"exception.repeat_limit_reached":    {"Limite di ripetizione raggiunto", "Repeat limit reached"},
	"exception.outside_support_period":  {"Fuori dal periodo di sostegno", "Outside the support period"},

	"event.TakenInCharge":        {"Presa in carico", "Taken in charge"},
	"event.SessionDelivered":     {"Servizio erogato", "Session delivered"},
	"event.PactSigned":           {"Patto di servizio firmato", "Service pact signed"},
	"event.TraineeshipActivated": {"Tirocinio attivato", "Traineeship activated"},
	"event.PathVerified":         {"Verifica del percorso", "Path verified"},
	"event.NoShowRecorded":       {"Assenza registrata", "No-show recorded"},
	"event.RefusalReported":      {"Rifiuto segnalato", "Refusal reported"},
	"event.PathClosed":           {"Percorso chiuso", "Path closed"},
	"event.PersonalDataErased":   {"Dati personali cancellati", "Personal data erased"},

	"noshow.first":     {"prima assenza ingiustificata", "first unjustified no-show"},
	"noshow.second":    {"seconda assenza ingiustificata", "second unjustified no-show"},
	"noshow.repeated":  {"assenza ingiustificata ripetuta", "repeated unjustified no-show"},
	"noshow.justified": {"assenza giustificata", "justified absence"},
	"noshow.inps":      {"da segnalare all'INPS", "to be reported to INPS"},

	"refusal.convocation": {"rifiuto della convocazione", "convocation refused"},
	"refusal.path":        {"rifiuto del percorso", "path refused"},
	"refusal.job_offer":   {"rifiuto di un'offerta di lavoro", "job offer refused"},

	"detail.minutes":     {"%s h accreditate (%s min effettivi)", "%s h credited (%s actual min)"},
	"detail.group":       {"gruppo di %d", "group of %d"},
	"detail.mediator":    {"con mediatore linguistico", "with a linguistic mediator"},
	"detail.appointment": {"appuntamento del %s", "appointment of %s"},
	"detail.from":        {"dal %s", "from %s"},
	"detail.until":       {"al %s", "to %s"},
	"detail.host":        {"azienda ospitante %s", "host employer %s"},
}
