package sqlstore

import (
	"context"
	"fmt"
)

// row is what a scan function reads: one row of *sql.Rows (or a *sql.Row).
type row = interface{ Scan(...any) error }

// queryAll runs query and turns every row into a T with scan; what names
// the query in errors. No rows is a nil slice.
func queryAll[T any](ctx context.Context, x *Tx, what, query string, args []any, scan func(row) (T, error)) ([]T, error) {
	rows, err := x.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
