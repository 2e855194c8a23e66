// Package e2e_test holds tokend's tests that need more than Go and the root
// module's dependencies: the dashboard driven in Chromium (chromedp), the
// Mailtrap Node SDK run against tokend (node and npm), and every API answer
// the root module's tests saw held against the OpenAPI document
// (kin-openapi). It is a module of its own, so that the root module does not
// depend on them; scripts/test runs it after the root module's tests.
package e2e_test

import (
	"os"
	"testing"

	"github.com/tokend/tokend/e2e/internal/openapitest"
	"github.com/tokend/tokend/internal/testutil"
)

// root is the root module's directory, tokend's checkout.
const root = ".."

// tokend is the binary built from the root module, which the browser and SDK
// tests run.
var tokend testutil.Binary

// TestMain builds the real tokend binary once, in the root module as a user
// builds it.
func TestMain(m *testing.M) { os.Exit(testutil.RunWithTokend(m, root, &tokend)) }

// call sends a request to the API with a bearer token (testutil.Call), and
// checks the answer against the OpenAPI document.
func call(t *testing.T, method, url, token string, body string) (int, string) {
	t.Helper()
	return testutil.Call(t, method, url, token, body, openapitest.Check)
}
