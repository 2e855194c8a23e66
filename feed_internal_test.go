package tokend

import (
	"testing"
	"time"
)

func ids(cs []AuthChange) []int64 {
	var out []int64
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func changes(ids ...int64) []AuthChange {
	out := make([]AuthChange, len(ids))
	for i, id := range ids {
		out[i] = AuthChange{ID: id, TokenID: id}
	}
	return out
}

// A change whose ID commits after a higher one (PostgreSQL) is still applied;
// one that never commits (a rollback) holds the floor only for changeGapWait.
func TestChangeFeedAppliesLateCommits(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var f changeFeed
	steps := []struct {
		name      string
		seen      []int64 // what a read from the floor returns
		at        time.Duration
		wantFresh []int64
		wantFloor int64
	}{
		{"in order", []int64{1, 2}, 0, []int64{1, 2}, 2},
		{"11 before 10", []int64{3, 5}, 0, []int64{3, 5}, 3},
		{"re-read: nothing twice", []int64{5}, time.Second, nil, 3},
		{"4 commits late", []int64{4, 5, 6}, 2 * time.Second, []int64{4, 6}, 6},
		{"8 rolled back", []int64{7, 9}, 3 * time.Second, []int64{7, 9}, 7},
		{"still waiting for 8", []int64{9}, 30 * time.Second, nil, 7},
		{"8 given up after a minute", []int64{9}, 64 * time.Second, nil, 9},
	}
	for _, s := range steps {
		fresh := f.take(changes(s.seen...), t0.Add(s.at))
		if got := ids(fresh); len(got) != len(s.wantFresh) || len(got) > 0 && got[len(got)-1] != s.wantFresh[len(s.wantFresh)-1] {
			t.Errorf("%s: fresh %v, want %v", s.name, got, s.wantFresh)
		}
		if f.floor != s.wantFloor {
			t.Errorf("%s: floor %d, want %d", s.name, f.floor, s.wantFloor)
		}
	}
	if len(f.applied) != 0 || len(f.missing) != 0 {
		t.Errorf("state left behind the floor: applied %v, missing %v", f.applied, f.missing)
	}
}
