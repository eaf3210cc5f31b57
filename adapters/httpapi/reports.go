package httpapi

// reportRoutes registers the report and listing endpoints.
func (s *Server) reportRoutes() {}
