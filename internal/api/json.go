package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tokend/tokend"
)

// maxBodyBytes caps every request body; larger bodies answer 413.
const maxBodyBytes = 1 << 20

// errNoBody is returned by decode for an empty request body.
var errNoBody = tokend.Invalid("base", "request body must be a JSON object")

// decode reads one JSON value from the capped body into v. Syntax errors,
// wrong types and trailing data are EINVALID errors that name the field;
// unknown fields are ignored. An oversized body yields *http.MaxBytesError.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeLimit(w, r, v, maxBodyBytes)
}

// decodeLimit is decode with its own bound on the body.
func decodeLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return tokend.Invalid("base", "request body must hold a single JSON object")
	}
	return nil
}

// decodeOptional is decode for bodies that may be empty.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) error {
	if err := decode(w, r, v); err != nil && err != errNoBody {
		return err
	}
	return nil
}

func decodeError(err error) error {
	var (
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
		tooBig   *http.MaxBytesError
		domainEr *tokend.Error
	)
	switch {
	case errors.As(err, &tooBig), errors.As(err, &domainEr):
		return err
	case errors.Is(err, io.EOF):
		return errNoBody
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return tokend.Invalid("base", "request body is not valid JSON")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return tokend.Invalid("base", fmt.Sprintf("request body must be a JSON object, not %s", typ.Value))
		}
		field, _, _ := strings.Cut(typ.Field, ".")
		return tokend.Invalid(field, fmt.Sprintf("%s must be %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value))
	}
	return tokend.Invalid("base", "request body could not be read")
}

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"), strings.HasPrefix(goKind, "float"):
		return "a number"
	case goKind == "string":
		return "a string"
	case goKind == "slice", goKind == "array":
		return "an array"
	case goKind == "bool":
		return "a boolean"
	}
	return "an object"
}

// encode writes v as JSON with status.
func encode(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing left to tell it
}
