package gateway

import (
	"net/url"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// pathProblem says why a request's path is refused (400 bad_path), or "".
// Rules match the path decoded once and cleaned, and the upstream gets that
// path, so a path is refused when the API behind could decode or trim it
// into another one:
//
//   - a target that is not a path (CONNECT host:port);
//   - an encoded slash, backslash or dot (%2F, %5C, %2E), which a server
//     may decode before it splits the path;
//   - path parameters (";", encoded or not), which servlet containers strip
//     from each segment ("/public/..;/admin");
//   - a decoded "?" or "#" (%3F, %23), which a server decoding the whole
//     target would take for the query or fragment;
//   - an escape that is still one once decoded (%252e), for a server that
//     decodes twice;
//   - a backslash, which some servers take for a slash;
//   - a control character (%00, %09…), which may cut the path short;
//   - bytes that are not UTF-8 once decoded (%C0%AE, an overlong "."),
//     which lenient decoders read as something else;
//   - a segment that ends in a dot or a space ("/admin./x", "/admin%20/x"),
//     which some servers drop.
func pathProblem(u *url.URL) string {
	p := u.Path
	if !strings.HasPrefix(p, "/") {
		return "The request target must be a path, starting with /"
	}
	if encodedSeparator(u.EscapedPath()) {
		return "Encoded slashes, backslashes and dots (%2F, %5C, %2E) are not accepted in paths"
	}
	if strings.Contains(p, ";") {
		return "Path parameters (;) are not accepted in paths"
	}
	if strings.ContainsAny(p, "?#") {
		return "Encoded question marks and hashes (%3F, %23) are not accepted in paths"
	}
	if strings.Contains(p, `\`) {
		return "Backslashes are not accepted in paths"
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return "Control characters (%00 to %1F, %7F) are not accepted in paths"
		}
		if p[i] == '%' && i+2 < len(p) && ishex(p[i+1]) && ishex(p[i+2]) {
			return "Paths are decoded once: an escaped escape (%25 then two hex digits) is not accepted"
		}
	}
	if !utf8.ValidString(p) {
		return "Paths must be UTF-8 once decoded"
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			continue // cleaned away
		}
		if r, _ := utf8.DecodeLastRuneInString(seg); r == '.' || unicode.IsSpace(r) {
			return "Path segments may not end in a dot or a space"
		}
	}
	return ""
}

// encodedSeparator reports whether an escaped path hides a path separator
// or dot from the routing: %2F, %5C or %2E, in either case.
func encodedSeparator(escaped string) bool {
	for i := 0; i+2 < len(escaped); i++ {
		if escaped[i] != '%' {
			continue
		}
		switch strings.ToUpper(escaped[i+1 : i+3]) {
		case "2F", "5C", "2E":
			return true
		}
	}
	return false
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// cleanPath is p without dot segments and doubled slashes, keeping a
// trailing slash: the path ServeMux would redirect to (see net/http's own
// cleanPath). p begins with "/".
func cleanPath(p string) string {
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}
