package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/testutil"
)

func TestBufferedWriterFlushesOnTickAndClose(t *testing.T) {
	out := &testutil.Buffer{}
	w := newBufferedWriter(out, 20*time.Millisecond)
	w.Write([]byte("first\n"))
	if out.String() != "" {
		t.Fatal("a line went out before the flush interval")
	}
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != "first\n" {
		if time.Now().After(deadline) {
			t.Fatal("the periodic flush never came")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.Write([]byte("last\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasSuffix(got, "last\n") {
		t.Fatalf("after Close: %q", got)
	}
}
