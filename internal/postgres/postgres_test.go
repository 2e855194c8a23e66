package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/postgres"
	"github.com/tokend/tokend/internal/storetest"
	"github.com/tokend/tokend/internal/testutil"
)

func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tokend.Store { return open(t, testutil.Postgres(t)) })
}

// Instances starting together on one database migrate it once, under the
// lock, and all come up.
func TestConcurrentStartsMigrateOnce(t *testing.T) {
	url := testutil.Postgres(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(context.Background(), url)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
