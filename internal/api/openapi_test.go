package api_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/api"
)

// contractPath is the shared contract, present beside the repository in
// development and CI; the test is skipped, loudly, on a bare clone.
const contractPath = "../../../shared/api-tokens.openapi.json"

// TestDocumentKeepsTheContract checks that tokend's own OpenAPI document keeps
// every operation, parameter, response and schema of the contract: equal, or
// a superset where tokend documents an extension (an added property, an added
// response code, an optional request body).
func TestDocumentKeepsTheContract(t *testing.T) {
	raw, err := os.ReadFile(contractPath)
	if os.IsNotExist(err) {
		abs, _ := filepath.Abs(contractPath)
		t.Skipf("contract not found at %s", abs)
	}
	if err != nil {
		t.Fatal(err)
	}
	var contract, ours map[string]any
	if err := json.Unmarshal(raw, &contract); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(api.OpenAPI, &ours); err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"paths", "components"} {
		assertSuperset(t, section, contract[section], ours[section])
	}
	if !reflect.DeepEqual(contract["security"], ours["security"]) {
		t.Errorf("security differs: %v vs %v", contract["security"], ours["security"])
	}
}

// assertSuperset reports where ours drops or changes anything contract has.
// Objects may gain keys; every other value must be equal.
func assertSuperset(t *testing.T, path string, contract, ours any) {
	t.Helper()
	cm, ok := contract.(map[string]any)
	if !ok {
		if !reflect.DeepEqual(contract, ours) {
			t.Errorf("%s: contract has %v, tokend's document has %v", path, contract, ours)
		}
		return
	}
	om, ok := ours.(map[string]any)
	if !ok {
		t.Errorf("%s: contract has an object, tokend's document has %v", path, ours)
		return
	}
	keys := make([]string, 0, len(cm))
	for k := range cm {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := om[k]; !ok {
			t.Errorf("%s: tokend's document lacks %q", path, k)
			continue
		}
		assertSuperset(t, path+"/"+strings.ReplaceAll(k, "/", "~1"), cm[k], om[k])
	}
}

// TestServedDocumentIsTheEmbeddedOne guards against serving a stale copy.
func TestServedDocumentIsTheEmbeddedOne(t *testing.T) {
	e := newEnv(t)
	if got := e.get("/api/openapi.json", "").want(200).Body; string(got) != string(api.OpenAPI) {
		t.Fatal("GET /api/openapi.json differs from the embedded document")
	}
}
