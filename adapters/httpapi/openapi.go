package httpapi

// openAPIRoutes registers /openapi.json.
func (s *Server) openAPIRoutes() {}
