package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB itself uses
)

// FerretDB v1's SQLite backend declares each collection's _id index on the
// expression `_ferretdb_sjson->"_id"` but looks documents up with
// `_ferretdb_sjson->'$._id'`, so SQLite never uses that index and every
// lookup, update and delete by _id scans the whole table. This adds an index
// on the expression the queries use, for every collection table, as tables
// appear. It changes no data and no query results, only the plan.
func indexIDLookups(ctx context.Context, dir string, logger *slog.Logger) {
	dbs := map[string]*sql.DB{}
	done := map[string]bool{}

	defer func() {
		for _, db := range dbs {
			_ = db.Close()
		}
	}()

	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()

	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		for _, file := range files {
			db, ok := dbs[file]
			if !ok {
				var err error
				if db, err = sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(5000)"); err != nil {
					continue
				}
				db.SetMaxOpenConns(1)
				dbs[file] = db
			}

			if err := indexTables(ctx, db, file, done); err != nil {
				logger.Debug("id index", "file", file, "error", err)
				_ = db.Close()
				delete(dbs, file)
			}
		}

		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func indexTables(ctx context.Context, db *sql.DB, file string, done map[string]bool) error {
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections`)
	if err != nil {
		return err
	}

	var tables []string
	for rows.Next() {
		var t string
		if err = rows.Scan(&t); err != nil {
			_ = rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	_ = rows.Close()

	for _, t := range tables {
		key := file + "\x00" + t
		if done[key] {
			continue
		}

		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+"__id_lookup", t)
		if _, err = db.ExecContext(ctx, q); err != nil {
			return err
		}
		done[key] = true
	}

	return nil
}
