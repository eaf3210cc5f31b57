package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/percorso/percorso/adapters/natsapi"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/projections/pgtest"
)

// deploy/nats/accounts.conf is a security boundary written in NATS's
// configuration language: these tests load it with the server's own parser
// and then start a server with it, run percorso as its service user, and
// try, as each of the other users, what that user must not be able to do.

var accountsConf = filepath.Join("..", "..", "deploy", "nats", "accounts.conf")

// analyticsPassword's bcrypt hash is what operations put in the server's
// environment (`nats server passwd`): the server never sees the password.
const (
	analyticsPassword = "analytics-test-password"
	analyticsHash     = "$2a$11$Wyn5YNyA/DnqeVU7rYjfqOu7vCviIlDx2wIzS.yGz3/p/0Ez9WMlC"
)

var natsPasswords = map[string]string{
	"PERCORSO_NATS_SERVICE_PASSWORD":   "service-test-password",
	"PERCORSO_NATS_AUDITOR_PASSWORD":   "auditor-test-password",
	"PERCORSO_NATS_ANALYTICS_PASSWORD": analyticsHash,
	"PERCORSO_NATS_APP_PASSWORD":       "app-test-password",
	"PERCORSO_NATS_SYS_PASSWORD":       "sys-test-password",
}

func setNATSPasswords(t *testing.T) {
	for k, v := range natsPasswords {
		t.Setenv(k, v)
	}
}

func TestAccountsConfLoads(t *testing.T) {
	setNATSPasswords(t)
	opts, err := server.ProcessConfigFile(accountsConf)
	if err != nil {
		t.Fatalf("accounts.conf: %v", err)
	}
	if opts.SystemAccount != "SYS" {
		t.Errorf("system account %q, want SYS", opts.SystemAccount)
	}
	var accounts []string
	for _, a := range opts.Accounts {
		accounts = append(accounts, a.Name)
	}
	slices.Sort(accounts)
	if !slices.Equal(accounts, []string{"APPS", "PERCORSO", "SYS"}) {
		t.Errorf("accounts %v", accounts)
	}
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	for name, want := range map[string]struct{ account, env string }{
		"percorso":     {"PERCORSO", "PERCORSO_NATS_SERVICE_PASSWORD"},
		"auditor":      {"PERCORSO", "PERCORSO_NATS_AUDITOR_PASSWORD"},
		"analytics":    {"PERCORSO", "PERCORSO_NATS_ANALYTICS_PASSWORD"},
		"operator-app": {"APPS", "PERCORSO_NATS_APP_PASSWORD"},
		"sys":          {"SYS", "PERCORSO_NATS_SYS_PASSWORD"},
	} {
		u := users[name]
		if u == nil {
			t.Errorf("no user %s", name)
			continue
		}
		if u.Account == nil || u.Account.Name != want.account {
			t.Errorf("user %s in account %v, want %s", name, u.Account, want.account)
		}
		if u.Password != natsPasswords[want.env] {
			t.Errorf("user %s: password not taken from $%s", name, want.env)
		}
		if name != "sys" && (u.Permissions == nil || u.Permissions.Publish == nil || len(u.Permissions.Publish.Allow) == 0) {
			t.Errorf("user %s publishes without an allow list", name)
		}
	}
	if len(users) != 5 {
		t.Errorf("%d users, want 5", len(users))
	}
	// The read-only users never get to create consumers (a push
	// consumer's deliveries are published past their permissions), nor to
	// publish on percorso's subjects.
	for _, name := range []string{"auditor", "analytics", "operator-app"} {
		for _, s := range users[name].Permissions.Publish.Allow {
			if strings.Contains(s, "CONSUMER.CREATE") || strings.Contains(s, "CONSUMER.DURABLE") ||
				strings.HasPrefix(s, "percorso.events") || strings.HasPrefix(s, "percorso.workers") || s == ">" || s == "$JS.API.>" {
				t.Errorf("user %s may publish to %s", name, s)
			}
		}
	}
	if got := users["operator-app"].Permissions.Publish.Allow; !slices.Equal(got, []string{"percorso.cmd.>"}) {
		t.Errorf("operator apps publish to %v, want percorso.cmd.> only", got)
	}
	if got := users["analytics"].Permissions.Subscribe.Allow; !slices.Equal(got, []string{"_INBOX_analytics.>"}) {
		t.Errorf("analytics subscribes to %v, want its own inboxes only", got)
	}

	// No secret in the file: every password is a variable.
	raw, err := os.ReadFile(accountsConf)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*[^#\s].*\bpassword:\s*(\S+)`).FindAllStringSubmatch(string(raw), -1) {
		if !strings.HasPrefix(m[1], "$PERCORSO_NATS_") {
			t.Errorf("a password written in the file: %s", m[0])
		}
	}

	// A missing password stops the server from starting.
	t.Setenv("PERCORSO_NATS_APP_PASSWORD", "")
	os.Unsetenv("PERCORSO_NATS_APP_PASSWORD")
	if _, err := server.ProcessConfigFile(accountsConf); err == nil || !strings.Contains(err.Error(), "PERCORSO_NATS_APP_PASSWORD") {
		t.Errorf("loading without PERCORSO_NATS_APP_PASSWORD: %v", err)
	}
}

// natsUser is a connection as one user of accounts.conf, with the
// permission errors the server sends it.
type natsUser struct {
	nc   *nats.Conn
	errs chan error
}

func connectAs(t *testing.T, url, user, password string, opts ...nats.Option) *natsUser {
	t.Helper()
	u := &natsUser{errs: make(chan error, 100)}
	opts = append(opts, nats.UserInfo(user, password), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case u.errs <- err:
		default:
		}
	}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	u.nc = nc
	return u
}

// denied runs act and reports whether the server answered it with a
// permissions violation naming subject. A denied request gets no answer:
// act's context is cancelled as soon as the violation is reported.
func (u *natsUser) denied(t *testing.T, subject string, act func(ctx context.Context) error) bool {
	t.Helper()
	for len(u.errs) > 0 {
		<-u.errs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		err := act(ctx)
		u.nc.Flush()
		done <- err
	}()
	for {
		select {
		case e := <-u.errs:
			if errors.Is(e, nats.ErrPermissionViolation) && strings.Contains(e.Error(), subject) {
				cancel()
				if done != nil {
					<-done
				}
				return true
			}
		case err := <-done:
			if errors.Is(err, nats.ErrPermissionViolation) {
				return true
			}
			done = nil // act is over; the violation may still be on its way
			go func() { time.Sleep(2 * time.Second); cancel() }()
		case <-ctx.Done():
			if done != nil {
				<-done
			}
			return false
		}
	}
}

// TestAccountsPermissionsHold starts a NATS server with accounts.conf, runs
// percorso on it as the percorso user, and checks each user can do its job
// and nothing more.
func TestAccountsPermissionsHold(t *testing.T) {
	setNATSPasswords(t)
	opts, err := server.ProcessConfigFile(accountsConf)
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.JetStream, opts.StoreDir = true, t.TempDir()
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	url := ns.ClientURL()
	withUser := func(user, pass string) string {
		return strings.Replace(url, "nats://", "nats://"+user+":"+pass+"@", 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Nobody gets in without a user.
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Error("an anonymous connection was accepted")
	}
	if nc, err := nats.Connect(withUser("analytics", "wrong")); err == nil {
		nc.Close()
		t.Error("a wrong password was accepted")
	}

	// percorso runs whole as the percorso user: stream, buckets, command
	// service, projector.
	dataDir := t.TempDir()
	m := NewMain(Config{HTTPAddr: "127.0.0.1:0", DataDir: dataDir, NATSURL: withUser("percorso", natsPasswords["PERCORSO_NATS_SERVICE_PASSWORD"]),
		PGURL: pgtest.New(t), Replicas: 1}, io.Discard)
	if err := m.Run(ctx); err != nil {
		m.Close()
		t.Fatalf("percorso as the percorso user: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	opTok := token(t, m, access.RoleOperator)
	op := client{t, m.HTTPURL(), opTok}
	worker := testPerson(t, 80000)
	st, b, _ := op.do("POST", "/v1/paths", worker.body("BO01"))
	if st != http.StatusCreated {
		t.Fatalf("take_in_charge over HTTP: %d %v", st, b)
	}
	path := b["path_id"].(string)
	service := connectAs(t, url, "percorso", natsPasswords["PERCORSO_NATS_SERVICE_PASSWORD"])
	sjs, _ := jetstream.New(service.nc)
	stream, err := sjs.Stream(ctx, eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	msgs := func() uint64 {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}

	// Operator apps: commands, from their own account, and nothing else.
	app := connectAs(t, url, "operator-app", natsPasswords["PERCORSO_NATS_APP_PASSWORD"])
	req := nats.NewMsg(natsapi.SubjectPrefix + "deliver_session")
	req.Header.Set("Authorization", "Bearer "+opTok)
	req.Data = []byte(fmt.Sprintf(`{"path_id":%q,"service":1,"delivered_at":"2010-03-01T09:00:00+01:00","minutes":20}`, path))
	reply, err := app.nc.RequestMsg(req, 10*time.Second)
	if err != nil || reply.Header.Get("Nats-Service-Error-Code") != "" || !strings.Contains(string(reply.Data), `"version"`) {
		t.Fatalf("an operator app's command: %v %v %s", err, reply.Header, reply.Data)
	}
	var version struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(reply.Data, &version); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := op.do("GET", fmt.Sprintf("/v1/paths/%s?min_version=%d", path, version.Version), ""); st != http.StatusOK {
		t.Fatalf("the projector, as the percorso user, did not apply the command: %d", st)
	}
	before := msgs()
	forged := eventstore.EventSubject(path)
	for _, c := range []struct {
		what, subject string
		act           func(ctx context.Context) error
	}{
		{"publish an event", forged, func(ctx context.Context) error { return app.nc.Publish(forged, []byte(`{}`)) }},
		{"publish to the worker index", "percorso.workers.x", func(ctx context.Context) error { return app.nc.Publish("percorso.workers.x", []byte(`{}`)) }},
		{"read the stream", "$JS.API.STREAM.INFO.PERCORSO", func(ctx context.Context) error {
			_, err := app.nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO.PERCORSO", nil)
			return err
		}},
		{"listen to events", "percorso.events.>", func(ctx context.Context) error { _, err := app.nc.SubscribeSync("percorso.events.>"); return err }},
		{"listen to commands", "percorso.cmd.>", func(ctx context.Context) error { _, err := app.nc.SubscribeSync("percorso.cmd.>"); return err }},
		{"discover services", "$SRV.PING", func(ctx context.Context) error { return app.nc.Publish("$SRV.PING", nil) }},
	} {
		if !app.denied(t, c.subject, c.act) {
			t.Errorf("an operator app could %s (%s)", c.what, c.subject)
		}
	}

	// Analytics: its durable, created by operations, and nothing else.
	if _, err := sjs.CreateOrUpdateConsumer(ctx, eventstore.StreamName, jetstream.ConsumerConfig{
		Durable: "analytics-activity", FilterSubject: eventstore.EventsWildcard, AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	an := connectAs(t, url, "analytics", analyticsPassword, nats.CustomInboxPrefix("_INBOX_analytics"))
	ajs, err := jetstream.New(an.nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := ajs.Consumer(ctx, eventstore.StreamName, "analytics-activity")
	if err != nil {
		t.Fatalf("analytics binding its durable: %v", err)
	}
	batch, err := cons.Fetch(10, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for msg := range batch.Messages() {
		types = append(types, msg.Headers().Get(eventstore.HdrType))
		if !strings.HasPrefix(msg.Subject(), eventstore.EventSubjectRoot) {
			t.Errorf("analytics received %s", msg.Subject())
		}
		if err := msg.DoubleAck(ctx); err != nil {
			t.Errorf("analytics acknowledging: %v", err)
		}
	}
	if len(types) < 2 || types[0] != "TakenInCharge" {
		t.Errorf("analytics read %v", types)
	}
	for _, c := range []struct {
		what, subject string
		act           func(ctx context.Context) error
	}{
		{"publish an event", forged, func(ctx context.Context) error { return an.nc.Publish(forged, []byte(`{}`)) }},
		{"send a command", natsapi.SubjectPrefix + "take_in_charge", func(ctx context.Context) error {
			return an.nc.Publish(natsapi.SubjectPrefix+"take_in_charge", []byte(`{}`))
		}},
		{"create a consumer", "$JS.API.CONSUMER.CREATE.PERCORSO", func(ctx context.Context) error {
			_, err := ajs.CreateConsumer(ctx, eventstore.StreamName, jetstream.ConsumerConfig{Durable: "mine", DeliverSubject: "$KV.PERCORSO_KEYS.x"})
			return err
		}},
		{"delete its durable", "$JS.API.CONSUMER.DELETE.PERCORSO.analytics-activity", func(ctx context.Context) error {
			return ajs.DeleteConsumer(ctx, eventstore.StreamName, "analytics-activity")
		}},
		{"read the stream directly", "$JS.API.STREAM.INFO.PERCORSO", func(ctx context.Context) error {
			_, err := ajs.Stream(ctx, eventstore.StreamName)
			return err
		}},
		{"read the key bucket", "$JS.API.STREAM.MSG.GET.KV_PERCORSO_KEYS", func(ctx context.Context) error {
			_, err := an.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_PERCORSO_KEYS", []byte(`{"last_by_subj":"$KV.PERCORSO_KEYS.x"}`))
			return err
		}},
		{"listen to events", "percorso.events.>", func(ctx context.Context) error { _, err := an.nc.SubscribeSync("percorso.events.>"); return err }},
		{"listen to others' replies", "_INBOX.>", func(ctx context.Context) error { _, err := an.nc.SubscribeSync("_INBOX.>"); return err }},
	} {
		if !an.denied(t, c.subject, c.act) {
			t.Errorf("analytics could %s (%s)", c.what, c.subject)
		}
	}

	// Auditors: a worker's history and a path's verification, from the
	// stream, with the CLI; no writes, no consumers.
	auditorURL := withUser("auditor", natsPasswords["PERCORSO_NATS_AUDITOR_PASSWORD"])
	cliCtx, cancelCLI := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelCLI()
	var out, errw strings.Builder
	if err := run(cliCtx, []string{"history", "--nats-url", auditorURL, "--data-dir", dataDir, worker.tax}, &out, &errw); err != nil {
		t.Fatalf("percorso history as the auditor: %v\n%s", err, errw.String())
	}
	if !strings.Contains(out.String(), path) || !strings.Contains(out.String(), "SessionDelivered") {
		t.Errorf("history as the auditor:\n%s", out.String())
	}
	out.Reset()
	if err := run(cliCtx, []string{"verify", "--nats-url", auditorURL, "--data-dir", dataDir, path}, &out, &errw); err != nil || !strings.Contains(out.String(), "OK") {
		t.Errorf("percorso verify as the auditor: %v\n%s%s", err, out.String(), errw.String())
	}
	aud := connectAs(t, url, "auditor", natsPasswords["PERCORSO_NATS_AUDITOR_PASSWORD"])
	for _, c := range []struct {
		what, subject string
		act           func(ctx context.Context) error
	}{
		{"publish an event", forged, func(ctx context.Context) error { return aud.nc.Publish(forged, []byte(`{}`)) }},
		{"send a command", natsapi.SubjectPrefix + "erase_worker", func(ctx context.Context) error {
			return aud.nc.Publish(natsapi.SubjectPrefix+"erase_worker", []byte(`{}`))
		}},
		{"create a consumer", "$JS.API.CONSUMER.CREATE.PERCORSO", func(ctx context.Context) error {
			_, err := aud.nc.RequestWithContext(ctx, "$JS.API.CONSUMER.CREATE.PERCORSO.x", []byte(`{}`))
			return err
		}},
		{"delete the stream", "$JS.API.STREAM.DELETE.PERCORSO", func(ctx context.Context) error {
			_, err := aud.nc.RequestWithContext(ctx, "$JS.API.STREAM.DELETE.PERCORSO", nil)
			return err
		}},
		{"destroy a key", "$JS.API.STREAM.MSG.DELETE.KV_PERCORSO_KEYS", func(ctx context.Context) error {
			_, err := aud.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.DELETE.KV_PERCORSO_KEYS", []byte(`{"seq":1}`))
			return err
		}},
		{"write a key", "$KV.PERCORSO_KEYS.x", func(ctx context.Context) error { return aud.nc.Publish("$KV.PERCORSO_KEYS.x", []byte("k")) }},
	} {
		if !aud.denied(t, c.subject, c.act) {
			t.Errorf("an auditor could %s (%s)", c.what, c.subject)
		}
	}
	if after := msgs(); after != before {
		t.Errorf("the stream went from %d to %d messages while the others tried to write", before, after)
	}
	var names []string
	lister := stream.ConsumerNames(ctx)
	for n := range lister.Name() {
		names = append(names, n)
	}
	if err := lister.Err(); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, "mine") || !slices.Contains(names, "analytics-activity") {
		t.Errorf("consumers after the attempts: %v", names)
	}

	// The system account answers its own user only.
	sys := connectAs(t, url, "sys", natsPasswords["PERCORSO_NATS_SYS_PASSWORD"])
	if _, err := sys.nc.Request("$SYS.REQ.SERVER.PING", nil, 5*time.Second); err != nil {
		t.Errorf("the system account: %v", err)
	}
	if !app.denied(t, "$SYS.REQ.SERVER.PING", func(ctx context.Context) error {
		_, err := app.nc.RequestWithContext(ctx, "$SYS.REQ.SERVER.PING", nil)
		return err
	}) {
		t.Error("an operator app reached the system account")
	}
}
