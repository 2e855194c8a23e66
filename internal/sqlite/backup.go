package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Backup writes a consistent copy of the database to the new file path, while
// the database stays in use: the copy is one snapshot (SQLite's VACUUM INTO,
// on the read pool, so writers never wait for it), and a write in flight is
// either wholly in it or not at all. An existing path is refused. The copy is
// written beside path and renamed into place, so an interrupted backup never
// leaves a partial file under that name. Only the owner may read the copy
// (mode 0600), as only it may read the database.
//
// To restore, stop every tokend process using the database, replace its file
// with the copy, delete the old file's -wal and -shm companions, and start
// tokend again.
func (s *Store) Backup(ctx context.Context, path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("backup: %s already exists; tokend never overwrites a file", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the temporary name means nothing to the operator
		}
		return fmt.Errorf("backup: cannot create %s: %w", path, err)
	}
	// The copy holds what the database holds: like it, it is the owner's
	// alone. VACUUM INTO fills the empty file CreateTemp made with mode 0600
	// rather than create one with SQLite's default mode (0644).
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName)
	if _, err := s.read.ExecContext(ctx, `VACUUM INTO ?`, tmpName); err != nil {
		return fmt.Errorf("backup: copy %s to %s: %w", s.path, path, err)
	}
	// A hard link fails if path appeared meanwhile, where a rename would replace it.
	if err := os.Link(tmpName, path); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}
