package api

import (
	_ "embed"
	"net/http"
)

// OpenAPI is tokend's OpenAPI document: the API Tokens contract, kept exactly,
// plus every extension tokend serves.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}
