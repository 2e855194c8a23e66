package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/sqlite"
	"github.com/tokend/tokend/internal/storetest"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tokend.Store {
		return open(t, filepath.Join(t.TempDir(), "tokend.db"))
	})
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokend.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), func(tx tokend.Tx) error {
		return tx.CreateAccount(context.Background(), &tokend.Account{Name: "Acme", Plan: tokend.PlanFree, RateLimit: 100, MessageLimit: 1000})
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path) // migrations run again and must be a no-op
	if err := s.Read(context.Background(), func(tx tokend.Tx) error {
		all, err := tx.Accounts(context.Background())
		if len(all) != 1 || all[0].Name != "Acme" {
			t.Errorf("after reopening: accounts = %+v", all)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsUnusablePath(t *testing.T) {
	if _, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "missing-dir", "x.db")); err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
}
