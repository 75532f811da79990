// Command embedded-mongo runs FerretDB as a library: a MongoDB-wire-compatible
// server backed by SQLite files, for development and tests on machines where no
// MongoDB binary can be had. Production uses a real MongoDB.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on (keep it on loopback)")
	dataDir := flag.String("data", ".cache/mongo-data", "directory for the SQLite files")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		log.Fatalf("embedded-mongo: -log-level: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		log.Fatalf("embedded-mongo: data dir: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatalf("embedded-mongo: data dir: %v", err)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Logger:   logger,
		Listener: ferretdb.ListenerConfig{TCP: *listen},
		Handler:  "sqlite",
		// WAL with synchronous=normal: no fsync per commit. Survives a crash of
		// this process, not a power cut: right for development and tests.
		SQLiteURL: "file:" + dir + "/?_pragma=synchronous(normal)",
	})
	if err != nil {
		log.Fatalf("embedded-mongo: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	go indexIDLookups(ctx, dir, logger)
	fmt.Printf("embedded-mongo listening: %s\n", f.MongoDBURI())

	if err := <-done; err != nil && ctx.Err() == nil {
		log.Fatalf("embedded-mongo: %v", err)
	}
}
