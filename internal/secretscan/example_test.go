package secretscan_test

import (
	"context"
	"log"
	"log/slog"
	"net/http"

	"github.com/tokend/tokend/internal/secretscan"
)

// leaks is the domain's side: it looks a token up and revokes it.
type leaks struct{}

func (leaks) Report(ctx context.Context, m secretscan.Match) (secretscan.Label, error) {
	// Look m.Token up; if it is one of ours, revoke it (idempotently: a
	// report that failed is sent again whole) and say so.
	return secretscan.FalsePositive, nil
}

func ExampleHandler() {
	logger := slog.Default()
	keys, err := secretscan.LoadKeys("/etc/tokend/github_secret_scanning_keys.json", secretscan.KeysOptions{
		OnReloadError: func(err error) {
			logger.Error("secret scanning keys not reloaded, the last good ones stay in use", "error", err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/github/secret-scanning", secretscan.Handler(keys, leaks{}, secretscan.HandlerOptions{Logger: logger}))
}
