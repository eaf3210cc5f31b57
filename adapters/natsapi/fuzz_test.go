package natsapi_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/percorso/percorso/adapters/wire"
)

// fuzzPath exists before the fuzzing starts, so that inputs naming it
// reach the path's rules and not only "path not found".
const fuzzPath = "6f1d2c3b-4a5e-4f60-8172-839405a6b7c8"

// FuzzDispatchNATS sends arbitrary bodies and header values to every
// command through a real NATS request. Whatever comes in, the answer is a
// well-formed success or a 4xx whose headers and body agree: never a 500,
// which is also what a recovered panic would produce.
//
// cmd picks the command, who the principal (0 operator, 1 admin, 2 operator
// of another office, 3 none, 4 an unknown token, 5 supervisor, 6 authz as
// the raw Authorization header).
func FuzzDispatchNATS(f *testing.F) {
	e := newEnv(f)
	open := takeInCharge(taxCodeN(f, 900))
	open["path_id"] = fuzzPath
	e.request(f, wire.CmdTakeInCharge, open, e.auth(operator)).result(f)

	f.Fuzz(func(t *testing.T, cmd, who uint8, body []byte, idemKey, ifMatch, corr, authz string) {
		name := wire.CommandNames[int(cmd)%len(wire.CommandNames)]
		h := hdr{}
		switch who % 7 {
		case 0:
			h = e.auth(operator)
		case 1:
			h = e.auth(admin)
		case 2:
			h = e.auth(operatorMO)
		case 4:
			h["Authorization"] = "Bearer pct_fuzz"
		case 5:
			h = e.auth(supervisor)
		case 6:
			h["Authorization"] = authz
		}
		for k, v := range map[string]string{"Idempotency-Key": idemKey, "If-Match": ifMatch, "X-Correlation-Id": corr} {
			if v != "" {
				h[k] = v
			}
		}
		r, err := e.try(name, body, h)
		if errors.Is(err, nats.ErrMaxPayload) {
			t.Skip("larger than the NATS server accepts")
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.status == 0 {
			var res struct {
				PathID   string            `json:"path_id"`
				Version  uint64            `json:"version"`
				GroupID  string            `json:"group_id"`
				Versions map[string]uint64 `json:"versions"`
			}
			if err := json.Unmarshal(r.data, &res); err != nil {
				t.Fatalf("%s: success reply %q: %v", name, r.data, err)
			}
			if (res.PathID == "" || res.Version == 0) && res.GroupID == "" && len(res.Versions) == 0 {
				t.Fatalf("%s: empty success reply %q", name, r.data)
			}
			return
		}
		if r.status < 400 || r.status >= 500 {
			t.Fatalf("%s: status %s", name, r)
		}
		if r.code == "" || strings.ToLower(r.code) != r.code {
			t.Fatalf("%s: error code %q", name, r.code)
		}
		r.errorBody(t)
	})
}
