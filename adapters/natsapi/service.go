// Package natsapi is percorso's NATS edge: the commands of API.md as a NATS
// micro service, so that scripts and other services on the same NATS can
// send commands without going through HTTP, and `nats micro ls` / `nats
// micro info percorso` find them without any other documentation.
//
// Every command is one endpoint, named after the command, on subject
// percorso.cmd.<name>. Request bodies, bearer tokens, Idempotency-Key,
// If-Match and X-Correlation-Id are those of the HTTP API (path ids and the
// erased tax code travel in the body, there being no URL), and decoding,
// authorization, dispatch and the error table all come from package wire:
// the same request gets the same answer, byte for byte in the JSON, on both
// transports. An error reply carries the HTTP status in
// Nats-Service-Error-Code and the snake_case code in Nats-Service-Error, as
// micro clients expect, and the JSON error body of HTTP as its payload.
//
// Endpoints join one queue group, so every running percorso shares the load
// and a request is served exactly once.
package natsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/percorso/percorso/adapters/wire"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/domain/command"
	"github.com/percorso/percorso/domain/fault"
)

const (
	// ServiceName is what `nats micro info` is asked for.
	ServiceName = "percorso"
	// Version is the version of this NATS contract (semver, as micro
	// requires); it changes with API.md, not with every build.
	Version = "1.0.0"
	// QueueGroup is shared by every instance, so that each request is
	// served by one of them.
	QueueGroup = "percorso"
	// SubjectPrefix precedes the command name in an endpoint's subject.
	SubjectPrefix = "percorso.cmd."

	description = "percorso commands: the worker-path commands of the HTTP API as NATS request/reply, same JSON bodies and headers"

	// requestTimeout bounds one command, as the HTTP server's write timeout
	// does; the requester has usually given up long before.
	requestTimeout = 30 * time.Second
	// stopWait bounds how long Stop waits for commands in progress, well
	// inside the 10 s a `percorso serve` has to exit.
	stopWait = 5 * time.Second
	// flushTimeout bounds the round trip that makes the server see the
	// endpoints' subscriptions (and their removal).
	flushTimeout = 2 * time.Second
	// maxHeaderBytes bounds a request's headers, as the HTTP server's
	// MaxHeaderBytes does (64 KiB).
	maxHeaderBytes = 64 << 10
	// authFailuresPerMinute is the HTTP edge's budget too.
	authFailuresPerMinute = 30
)

// Service is the running NATS edge.
type Service struct {
	nc       *nats.Conn
	svcs     []micro.Service
	commands *command.Handler
	auth     *access.Directory
	limiter  *access.Limiter
	log      *slog.Logger

	// base is every request's parent context; Stop cancels it only when
	// commands outlive stopWait.
	base   context.Context
	cancel context.CancelFunc

	// mu orders stopping against requests starting, so that inflight.Add
	// never races inflight.Wait.
	mu       sync.RWMutex
	stopping bool
	inflight sync.WaitGroup

	// observe, when set, is told every command's outcome ("" for success)
	// and duration: the HTTP edge's metrics count both transports.
	observe atomic.Pointer[func(name, code string, d time.Duration)]
}

// Observe has fn told every command's name, outcome code ("" for success)
// and duration, from the next command on.
func (s *Service) Observe(fn func(name, code string, d time.Duration)) {
	s.observe.Store(&fn)
}

// New registers the percorso micro service on nc, one endpoint per command.
// log may be nil.
func New(nc *nats.Conn, h *command.Handler, auth *access.Directory, log *slog.Logger) (*Service, error) {
	if nc == nil || h == nil || auth == nil {
		return nil, errors.New("natsapi: a connection, a command handler and a principals directory are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{nc: nc, commands: h, auth: auth, limiter: access.NewLimiter(authFailuresPerMinute), log: log}
	s.base, s.cancel = context.WithCancel(context.Background())
	// micro serves each endpoint one request at a time (its statistics are
	// kept around the handler call), so concurrency comes from instances:
	// several in each process, all in one queue group, like several
	// processes would be.
	for range Instances {
		svc, err := s.addInstance()
		if err != nil {
			s.stopAll()
			s.cancel()
			return nil, err
		}
		s.svcs = append(s.svcs, svc)
	}
	// Subscriptions are only queued on the connection: flushing makes
	// the endpoints reachable by the time New returns.
	if err := nc.FlushTimeout(flushTimeout); err != nil {
		s.stopAll()
		s.cancel()
		return nil, fmt.Errorf("natsapi: registering endpoints: %w", err)
	}
	return s, nil
}

// Instances is how many service instances one process runs: the number of
// commands of one kind it handles at once.
const Instances = 16

func (s *Service) addInstance() (micro.Service, error) {
	log := s.log
	svc, err := micro.AddService(s.nc, micro.Config{
		Name:        ServiceName,
		Version:     Version,
		Description: description,
		QueueGroup:  QueueGroup,
		// Slow consumers and the like: nothing the requester sees, so
		// they must at least reach the operators' logs.
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			log.Error("nats command service error", "subject", e.Subject, "err", e.Description)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("natsapi: add service: %w", err)
	}
	for _, name := range wire.CommandNames {
		if err := svc.AddEndpoint(name, s.endpoint(name), micro.WithEndpointSubject(SubjectPrefix+name)); err != nil {
			svc.Stop()
			return nil, fmt.Errorf("natsapi: endpoint %s: %w", name, err)
		}
	}
	return svc, nil
}

func (s *Service) stopAll() error {
	var err error
	for _, svc := range s.svcs {
		err = errors.Join(err, svc.Stop())
	}
	return err
}

// Stop unsubscribes every endpoint, so that new requests go to the other
// instances of the queue group, answers 503 to any request already queued
// here, and waits (bounded) for the commands in progress.
func (s *Service) Stop() error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return nil
	}
	s.stopping = true
	s.mu.Unlock()
	err := s.stopAll()
	// The unsubscriptions are only queued on the connection: until the
	// server has them, it keeps routing requests here rather than to the
	// other instances.
	if ferr := s.nc.FlushTimeout(flushTimeout); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
		err = errors.Join(err, fmt.Errorf("natsapi: flush on stop: %w", ferr))
	}
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(stopWait):
		err = errors.Join(err, fmt.Errorf("natsapi: commands still running after %s: cancelled", stopWait))
	}
	s.cancel()
	return err
}

// endpoint serves one command. micro calls it on the endpoint's
// subscription goroutine, one request at a time: answering from another
// goroutine would race with micro's own bookkeeping of errors and timings
// (what `nats micro stats` shows). Concurrency comes from the Instances of
// the service in each process and from the processes in the queue group.
func (s *Service) endpoint(name string) micro.HandlerFunc {
	return func(req micro.Request) {
		s.mu.RLock()
		if s.stopping {
			s.mu.RUnlock()
			s.fail(req, name, &fault.Error{Kind: fault.Unavailable, Code: fault.CodeUnavailable, Message: "this instance is shutting down: try again"})
			return
		}
		s.inflight.Add(1)
		s.mu.RUnlock()
		defer s.inflight.Done()
		s.serve(req, name)
	}
}

func (s *Service) serve(req micro.Request, name string) {
	if req.Reply() == "" {
		// A command published without a reply subject would run with
		// nobody to see its version or its refusal; API.md offers
		// request/reply only, so it is dropped rather than half-served.
		s.log.Warn("nats command without a reply subject ignored", "command", name)
		return
	}
	answered := false
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		// The panic value may quote the input, which may be personal
		// data: only its type and the stack are logged.
		s.log.Error("panic serving nats command", "command", name, "panic_type", fmt.Sprintf("%T", v), "stack", string(debug.Stack()))
		if !answered {
			s.fail(req, name, fault.Wrap(errors.New("panic"), "internal error"))
		}
	}()
	start := time.Now()
	res, err := s.run(req, name)
	if fn := s.observe.Load(); fn != nil {
		(*fn)(name, fault.CodeOf(err), time.Since(start))
	}
	if err != nil {
		answered = true
		s.fail(req, name, err)
		return
	}
	body, err := json.Marshal(res)
	if err != nil {
		answered = true
		s.fail(req, name, fault.Wrap(err, "internal error"))
		return
	}
	answered = true
	if err := req.Respond(body); err != nil {
		s.log.Warn("nats command reply not sent", "command", name, "err", err)
	}
}

// run authenticates, checks the size and the headers, and dispatches, in
// the order the HTTP edge does, so that the same faulty request gets the
// same error on both.
func (s *Service) run(req micro.Request, name string) (command.Result, error) {
	h := req.Headers()
	p, err := s.principal(header(h, "Authorization"))
	if err != nil {
		return command.Result{}, err
	}
	size := 0
	for k, vs := range h {
		for _, v := range vs {
			size += len(k) + len(v)
		}
	}
	if size > maxHeaderBytes {
		return command.Result{}, fault.New(fault.TooLarge, fault.CodeTooLarge, "request headers are larger than %d bytes", maxHeaderBytes)
	}
	body := req.Data()
	if len(body) > wire.MaxBody {
		return command.Result{}, fault.New(fault.TooLarge, fault.CodeTooLarge, "request body is larger than %d bytes", wire.MaxBody)
	}
	call := wire.Call{Name: name, Principal: p, Body: body, FromBody: true,
		IdempotencyKey: header(h, "Idempotency-Key"), CorrelationID: header(h, "X-Correlation-Id")}
	if v := header(h, "If-Match"); v != "" {
		n, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
		if err != nil {
			return command.Result{}, fault.Invalidf("If-Match", "If-Match must be a version number, e.g. \"42\"")
		}
		call.IfMatch = &n
	}
	ctx, cancel := context.WithTimeout(s.base, requestTimeout)
	defer cancel()
	return wire.Dispatch(ctx, s.commands, call)
}

// principal authenticates a bearer token. Failures are counted by the
// access.Limiter like the HTTP edge's, but NATS hides the client's address
// from a service, so the limiter is keyed by a fingerprint of the token
// presented instead. The limiter exists to stop a misconfigured script that
// keeps retrying a revoked or mistyped token from flooding logs and CPU, and
// such a script repeats the same token: keyed by it, the script is throttled
// and nobody else is. A single constant key would let one broken client lock
// every NATS caller out (successful callers are checked against the same
// bucket); the reply inbox identifies a connection but is chosen freely by
// the client, so it is no stronger than the token and less stable across
// reconnects. A caller varying its tokens escapes this key, but it already
// holds NATS credentials: stopping it is the NATS server's authentication
// and permissions' job. The fingerprint is a hash, so the limiter's memory
// holds no token material and a key has a fixed size however long the
// header is.
func (s *Service) principal(authorization string) (access.Principal, error) {
	token, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok || token == "" {
		return access.Principal{}, fault.New(fault.Unauthenticated, fault.CodeUnauthenticated, "an Authorization: Bearer token is required")
	}
	key := "nats:" + access.HashToken(token)[:32]
	now := time.Now()
	if s.limiter.Blocked(key, now) {
		return access.Principal{}, fault.New(fault.TooMany, fault.CodeTooManyRequests, "too many failed authentications: try again later")
	}
	p, err := s.auth.Authenticate(token)
	if err != nil {
		s.limiter.Allow(key, now)
		return access.Principal{}, fault.New(fault.Unauthenticated, fault.CodeUnauthenticated, "unknown token")
	}
	return p, nil
}

// fail answers with the error: status and code in micro's headers, the
// same JSON body as HTTP in the payload. Only server faults are logged,
// and never with the request body.
func (s *Service) fail(req micro.Request, name string, err error) {
	e := fault.As(err)
	status := wire.Status(e.Kind)
	code := e.Code
	if code == "" {
		code = fault.CodeInternal
	}
	if status >= 500 {
		s.log.Error("nats command failed", "command", name, "status", status, "code", code, "err", e.Err)
	}
	body, merr := json.Marshal(wire.Body(e))
	if merr != nil {
		body = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	if err := req.Error(strconv.Itoa(status), code, body); err != nil {
		s.log.Warn("nats command error reply not sent", "command", name, "err", err)
	}
}

// header reads a request header. NATS headers are case-sensitive; API.md
// spells the names as HTTP does, but a client ported from HTTP (where case
// does not matter, and HTTP/2 lowercases) may not, so another spelling is
// accepted when the canonical one is absent.
func header(h micro.Headers, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, name) {
			return vs[0]
		}
	}
	return ""
}
