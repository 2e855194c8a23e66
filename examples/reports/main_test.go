package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/testutil"
)

// The example runs as its README says, against a real tokend.
func TestReportsService(t *testing.T) {
	tk := testutil.Tokend(t, testutil.TokendOptions{})
	p, err := tk.Svc.CreateProject(context.Background(), &tk.Admin.Token, "Billing")
	if err != nil {
		t.Fatal(err)
	}
	service := tk.Token(t, "reports service")
	viewer := tk.Token(t, "analyst", tokend.Permission{ResourceType: tokend.ResourceProject, ResourceID: p.ID, Level: tokend.Viewer})

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	env := map[string]string{"TOKEND_URL": tk.URL, "TOKEND_TOKEN": service.Value}
	go func() {
		done <- run(ctx, []string{"reports", "--addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, io.Discard, pw)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct{ Msg, URL string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				urls <- line.URL
			}
		}
	}()
	var base string
	select {
	case base = <-urls:
	case <-time.After(10 * time.Second):
		t.Fatal("the service did not start")
	}
	get := func(method, path, token string) int {
		req, _ := http.NewRequest(method, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, c := range []struct {
		name, method, path, token string
		status                    int
	}{
		{"health needs nothing", "GET", "/healthz", "", 200},
		{"me needs a token", "GET", "/me", "", 401},
		{"ping needs a token", "GET", "/ping", "", 401},
		{"ping", "GET", "/ping", viewer.Value, 200},
		{"me", "GET", "/me", viewer.Value, 200},
		{"reports of its project", "GET", fmt.Sprintf("/projects/%d/reports", p.ID), viewer.Value, 200},
		{"reports of another project", "GET", "/projects/999/reports", viewer.Value, 403},
		{"writing needs admin", "POST", fmt.Sprintf("/projects/%d/reports", p.ID), viewer.Value, 403},
		{"the account admin writes", "POST", fmt.Sprintf("/projects/%d/reports", p.ID), tk.Admin.Value, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := get(c.method, c.path, c.token); got != c.status {
				t.Fatalf("%s %s: %d, want %d", c.method, c.path, got, c.status)
			}
		})
	}
}
