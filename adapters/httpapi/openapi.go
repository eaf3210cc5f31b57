package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the OpenAPI 3.1 description of every route, kept as a
// hand-maintained JSON file beside the handlers rather than generated from
// them: it is the public contract, so it changes on purpose, in review, and
// the tests hold it to the routes, the wire bodies and the error codes.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPIDocument returns a copy of the OpenAPI document the server serves,
// for tools that want it without a running server.
func OpenAPIDocument() []byte {
	return append([]byte(nil), openAPIDocument...)
}

// openAPIRoutes registers /openapi.json. It needs no token: client
// generators and gateways fetch it before they have credentials.
func (s *Server) openAPIRoutes() {
	s.mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(openAPIDocument)
	})
}
