package httpapi_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/percorso/percorso/adapters/httpapi"
	"github.com/percorso/percorso/domain/access"
	"github.com/percorso/percorso/eventstore/natsjs/jstest"
)

// fuzzRoutes are the command routes; %p is replaced by a path id.
var fuzzRoutes = []string{
	"/v1/paths", "/v1/paths/%p/sessions", "/v1/group-sessions", "/v1/paths/%p/pact", "/v1/paths/%p/traineeships",
	"/v1/paths/%p/verification", "/v1/paths/%p/no-shows", "/v1/paths/%p/refusals", "/v1/paths/%p/close",
	"/v1/workers/RSSMRA80A01H501U/erasure",
}

// FuzzHTTPCommands sends arbitrary bodies and headers to every command
// route of a server on a real JetStream: whatever comes in, the answer is
// never a 5xx, and every error is the documented JSON error body.
func FuzzHTTPCommands(f *testing.F) {
	f.Add(uint8(0), []byte(`{"worker":{"tax_code":"RSSMRA80A01H501U","given_name":"A","family_name":"B","disability":false},"category":"a","support":{"kind":"cig_deroga","from":"2010-01-04"},"office":"BO01","taken_at":"2010-02-01T09:00:00Z"}`), "", "", "")
	f.Add(uint8(1), []byte(`{"service":2,"delivered_at":"2010-02-01T09:30:00+01:00","minutes":25}`), "k1", `"3"`, "00000000-0000-4000-8000-000000000000")
	f.Add(uint8(2), []byte(`{"service":6,"delivered_at":"2010-02-01T09:30:00Z","minutes":25,"participants":["x"]}`), "", "", "")
	f.Add(uint8(5), []byte(`{"verified_at":"2010","outcome":"maybe","minutes":-1}`), "", "W/\"1\"", "..%2f..%2fetc")
	f.Add(uint8(9), []byte(``), "", "", "")
	f.Add(uint8(3), []byte(`{"signed_at":null,"did_on":[1,2]}`), "", "abc", "")
	f.Add(uint8(0), []byte(`{"worker":{"tax_code":1e400}}`), "", "", "")
	f.Add(uint8(4), []byte(`{"host_tax_code":"00743110157","starts_on":"2010-02-30","delivered_at":"2010-02-01T09:00:00Z","minutes":999999999999}`), "", "", "")
	f.Add(uint8(8), []byte("{\"closed_at\":\"2010-02-01T09:00:00Z\",\"reason\":\"\u0000\"}"), "", "", "")

	w := jstest.New(f)
	file, tokens, err := access.GenerateDev([]string{"BO01"})
	if err != nil {
		f.Fatal(err)
	}
	dir, err := access.ParsePrincipals(file, nil)
	if err != nil {
		f.Fatal(err)
	}
	admin := ""
	for _, tk := range tokens {
		if tk.Role == access.RoleAdmin {
			admin = tk.Token
		}
	}
	srv := httpapi.New(w.Handler, nil, dir, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))

	f.Fuzz(func(t *testing.T, route uint8, body []byte, key, ifMatch, pathID string) {
		if pathID == "" {
			pathID = "00000000-0000-4000-8000-000000000001"
		}
		target := strings.ReplaceAll(fuzzRoutes[int(route)%len(fuzzRoutes)], "%p", pathID)
		req, err := http.NewRequest("POST", "http://percorso"+target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		if key != "" {
			req.Header["Idempotency-Key"] = []string{key}
		}
		if ifMatch != "" {
			req.Header["If-Match"] = []string{ifMatch}
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", target, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s: %d with a body that is not the error JSON: %s", target, rec.Code, rec.Body)
			}
		}
	})
}
