package cli

import (
	"bufio"
	"io"
	"log/slog"
	"sync"
	"time"
)

// bufferedWriter batches log lines so that logging every request costs no
// write system call each: lines reach the underlying writer when 64 KiB have
// gathered, every interval, and on Close. At most one interval of lines is
// lost if the process is killed.
type bufferedWriter struct {
	mu   sync.Mutex
	buf  *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newBufferedWriter(w io.Writer, interval time.Duration) *bufferedWriter {
	b := &bufferedWriter{buf: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.mu.Lock()
				b.buf.Flush()
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Close stops the flusher and writes what is buffered.
func (b *bufferedWriter) Close() error {
	close(b.stop)
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Flush()
}

// newLogger is the logger of the commands that run (serve, proxy): JSON
// lines at level and above, with every duration written as people read it,
// "24h0m0s" or "1.5ms", rather than as integer nanoseconds. The lines reach w
// in batches, every 100 ms; closeLogs writes what is left.
func newLogger(w io.Writer, level slog.Level) (logger *slog.Logger, closeLogs func() error) {
	logs := newBufferedWriter(w, 100*time.Millisecond)
	return slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level, ReplaceAttr: readableDuration})), logs.Close
}

// readableDuration writes durations as text. It also hands slog the
// record's level as the text slog would write for it: given a ReplaceAttr,
// slog's JSON handler passes the level as a value it encodes through
// encoding/json, by reflection, on every line.
func readableDuration(groups []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindDuration:
		a.Value = slog.StringValue(a.Value.Duration().String())
	case slog.KindAny:
		if l, ok := a.Value.Any().(slog.Level); ok && len(groups) == 0 && a.Key == slog.LevelKey {
			a.Value = slog.StringValue(l.String())
		}
	}
	return a
}
