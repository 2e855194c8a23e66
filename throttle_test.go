package tokend_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokend/tokend"
)

// The gate spends the client's budget only on credentials that fail, and
// stops asking once the budget is spent. (That a burst of one credential
// shares one lookup is tested through the middleware and the API.)
func TestGate(t *testing.T) {
	clock := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	cases := []struct {
		name    string
		failed  bool
		lookups int // sequential lookups of distinct credentials
		wantErr int // how many of them the throttle refuses
		wantRan int // how many reached the source
	}{
		{"good credentials never spend the budget", false, 10, 0, 10},
		{"failing credentials spend it, then are refused unasked", true, 5, 2, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := tokend.NewGate[int](&tokend.Throttle{Limits: tokend.NewLocalLimits(now), Limit: 3})
			ran, refused := 0, 0
			for i := range c.lookups {
				_, d, err := g.Lookup(context.Background(), string(rune('a'+i)), "192.0.2.1", func(context.Context) (int, bool) {
					ran++
					return i, c.failed
				})
				if err != nil {
					if err != tokend.ErrThrottled || d.RetryAfter <= 0 {
						t.Fatalf("refusal %v with retry-after %v, want ErrThrottled with a wait", err, d.RetryAfter)
					}
					refused++
				}
			}
			if ran != c.wantRan || refused != c.wantErr {
				t.Errorf("source asked %d times, %d refused; want %d and %d", ran, refused, c.wantRan, c.wantErr)
			}
		})
	}

}
