package natsapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/percorso/percorso/adapters/natsapi"
	"github.com/percorso/percorso/adapters/wire"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/taxcode"
	"github.com/percorso/percorso/eventstore"
	"github.com/percorso/percorso/eventstore/natsjs"
	"github.com/percorso/percorso/eventstore/natstest"
	"github.com/percorso/percorso/eventstore/privacy"
)

// Principals of every test: the dev principals of office BO01, plus an
// operator of Modena to be refused BO01's paths.
const (
	operator   = "operator"
	supervisor = "supervisor"
	admin      = "admin"
	operatorMO = "operator_mo01"
)

// env is a percorso command service on a real NATS server, built as
// cmd/percorso/serve.go builds it, and a separate client connection.
type env struct {
	url     string
	dir     *access.Directory
	client  *nats.Conn
	svc     *natsapi.Service
	handler *command.Handler
	stream  jetstream.Stream
	tokens  map[string]string
	logs    *syncBuffer
}

// newEnv starts a JetStream server with default options.
func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvOn(t, natstest.Server(t, "").ClientURL())
}

// newEnvMaxPayload starts a server accepting messages up to maxPayload
// bytes (the default is 1 MiB, the API's own limit).
func newEnvMaxPayload(t testing.TB, maxPayload int32) *env {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true, MaxPayload: maxPayload}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	return newEnvOn(t, s.ClientURL())
}

func newEnvOn(t testing.TB, url string) *env {
	t.Helper()
	ctx := context.Background()
	serviceConn, js := natstest.Connect(t, url)
	stream, err := natsjs.Provision(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := privacy.NewSealer(bytes.Repeat([]byte{0x5a}, 32), privacy.NewMemoryKeyStore())
	if err != nil {
		t.Fatal(err)
	}
	codec := eventstore.NewCodec(sealer, func(err error) bool { return errors.Is(err, privacy.ErrErased) })
	store := natsjs.New(js, stream, codec)
	idem, err := natsjs.NewIdempotency(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	handler := command.New(store, idem, sealer)
	dir, tokens := principals(t)
	logs := &syncBuffer{}
	svc, err := natsapi.New(serviceConn, handler, dir, slogTo(logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	client, _ := natstest.Connect(t, url)
	return &env{url: url, dir: dir, client: client, svc: svc, handler: handler, stream: stream, tokens: tokens, logs: logs}
}

// principals builds the directory the way a deployment does: from a
// principals file holding hashes only.
func principals(t testing.TB) (*access.Directory, map[string]string) {
	t.Helper()
	file, dev, err := access.GenerateDev([]string{"BO01"})
	if err != nil {
		t.Fatal(err)
	}
	var f access.File
	if err := json.Unmarshal(file, &f); err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, d := range dev {
		tokens[string(d.Role)] = d.Token
	}
	mo, err := access.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tokens[operatorMO] = mo
	f.Principals = append(f.Principals, access.FileEntry{
		Principal:   access.Principal{Name: "mo-operator", Role: access.RoleOperator, Offices: []string{"MO01"}},
		TokenSHA256: access.HashToken(mo)})
	data, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := access.ParsePrincipals(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dir, tokens
}

// reply is a command's answer as a NATS client sees it.
type reply struct {
	status int    // Nats-Service-Error-Code; 0 on success
	code   string // Nats-Service-Error
	data   []byte
}

func (r reply) String() string {
	if r.status == 0 {
		return "ok " + string(r.data)
	}
	return fmt.Sprintf("%d %s %s", r.status, r.code, r.data)
}

// result decodes a successful reply.
func (r reply) result(t testing.TB) command.Result {
	t.Helper()
	if r.status != 0 {
		t.Fatalf("want success, got %s", r)
	}
	var res command.Result
	if err := json.Unmarshal(r.data, &res); err != nil {
		t.Fatalf("success reply is not a result: %v: %s", err, r.data)
	}
	return res
}

// errorBody decodes an error reply strictly and checks it agrees with its
// headers.
func (r reply) errorBody(t testing.TB) wire.ErrorBody {
	t.Helper()
	if r.status == 0 {
		t.Fatalf("want an error, got %s", r)
	}
	var b wire.ErrorBody
	if err := wire.Decode(r.data, &b); err != nil {
		t.Fatalf("error body %q: %v", r.data, err)
	}
	if b.Error.Code != r.code {
		t.Fatalf("body code %q, header %q", b.Error.Code, r.code)
	}
	if b.Error.Message == "" {
		t.Fatalf("error without a message: %s", r.data)
	}
	return b
}

// headers of a request; as is the principal's role, "" for none.
type hdr map[string]string

func (e *env) auth(as string) hdr {
	if as == "" {
		return hdr{}
	}
	return hdr{"Authorization": "Bearer " + e.tokens[as]}
}

func (e *env) request(t testing.TB, name string, body any, h hdr) reply {
	t.Helper()
	r, err := e.try(name, body, h)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

func (e *env) try(name string, body any, h hdr) (reply, error) {
	var data []byte
	switch b := body.(type) {
	case []byte:
		data = b
	case string:
		data = []byte(b)
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			return reply{}, err
		}
	}
	msg := nats.NewMsg(natsapi.SubjectPrefix + name)
	msg.Data = data
	for k, v := range h {
		msg.Header.Set(k, v)
	}
	m, err := e.client.RequestMsg(msg, 10*time.Second)
	if err != nil {
		return reply{}, err
	}
	return parseReply(m)
}

func parseReply(m *nats.Msg) (reply, error) {
	r := reply{data: m.Data}
	code := m.Header.Get(micro.ErrorCodeHeader)
	if code == "" {
		if m.Header.Get(micro.ErrorHeader) != "" {
			return r, fmt.Errorf("%s without %s", micro.ErrorHeader, micro.ErrorCodeHeader)
		}
		return r, nil
	}
	n, err := strconv.Atoi(code)
	if err != nil {
		return r, fmt.Errorf("%s %q is not a status", micro.ErrorCodeHeader, code)
	}
	r.status, r.code = n, m.Header.Get(micro.ErrorHeader)
	return r, nil
}

// taxCodeN returns a valid, distinct personal tax code for every n: the
// name letters vary, the check character is computed.
func taxCodeN(t testing.TB, n int) string {
	t.Helper()
	prefix := fmt.Sprintf("RSS%c%c%c80A01H501", 'A'+n/676%26, 'A'+n/26%26, 'A'+n%26)
	c, err := taxcode.CheckChar(prefix)
	if err != nil {
		t.Fatal(err)
	}
	code := prefix + string(c)
	if err := taxcode.CheckPerson(code); err != nil {
		t.Fatalf("generated %s: %v", code, err)
	}
	return code
}

// takeInCharge is a valid take_in_charge body of a worker in mobilità.
func takeInCharge(tax string) map[string]any {
	return map[string]any{
		"worker":   map[string]any{"tax_code": tax, "given_name": "Mario", "family_name": "Rossi", "birth_date": "1980-01-01", "disability": false},
		"category": "d",
		"support":  map[string]any{"kind": "mobilita_deroga", "from": "2010-01-15", "to": "2011-01-14"},
		"office":   "BO01",
		"taken_at": "2010-02-01T09:00:00+01:00",
	}
}

// openPath takes a worker in charge and returns the path id and version.
func (e *env) openPath(t testing.TB, n int) (string, uint64) {
	t.Helper()
	res := e.request(t, wire.CmdTakeInCharge, takeInCharge(taxCodeN(t, n)), e.auth(operator)).result(t)
	if res.PathID == "" || res.Version == 0 {
		t.Fatalf("take_in_charge result %+v", res)
	}
	return res.PathID, res.Version
}

// lastEvent is the last event on a path's subject of the stream.
func (e *env) lastEvent(t testing.TB, pathID string) *jetstream.RawStreamMsg {
	t.Helper()
	m, err := e.stream.GetLastMsgForSubject(context.Background(), eventstore.EventSubject(pathID))
	if err != nil {
		t.Fatalf("last event of %s: %v", pathID, err)
	}
	return m
}

func slogTo(b *syncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// syncBuffer collects the service's log lines from its goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
