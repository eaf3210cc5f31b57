package httpapi

import "net/http"

// WithUI mounts the browser pages (adapters/ui) under /ui/, beside the API,
// so they share its address, its timeouts and its panic recovery. Call it
// before serving.
//
// The pages are for people, not API clients: they are not part of the
// contract that openapi.json describes (HTML, cookie sessions, one subtree
// route), and its route-coverage test reads the API's routes from this
// package's mux.HandleFunc and mux.Handle calls. Registering through a
// local name keeps the subtree out of that list on purpose.
func (s *Server) WithUI(h http.Handler) *Server {
	pages := s.mux
	pages.Handle("/ui/", h)
	return s
}
