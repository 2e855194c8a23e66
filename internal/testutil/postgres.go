package testutil

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// PostgresEnv names a server the tests use instead of starting their own:
// postgres://user@host:port (scripts/test starts one and sets it).
const PostgresEnv = "TOKEND_TEST_POSTGRES"

var (
	pgOnce   sync.Once
	pgServer string // postgres://tokend@127.0.0.1:port
	pgErr    error
	pgSeq    atomic.Int64
)

// Postgres returns the URL of a new, empty database for t on a PostgreSQL
// server: the one PostgresEnv names, or else one this test binary starts
// itself (initdb and postgres in a temporary directory, on loopback, as the
// "postgres" user when run as root), which dies with the binary. It never
// skips: without a server and without PostgreSQL installed, t fails, naming
// what to install.
func Postgres(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() {
		if v := os.Getenv(PostgresEnv); v != "" {
			pgServer = v
			return
		}
		pgServer, pgErr = startPostgres()
	})
	if pgErr != nil {
		t.Fatalf("PostgreSQL for the tests: %v", pgErr)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), pgSeq.Add(1))
	admin, err := sql.Open("pgx", pgServer+"/postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", pgServer+"/postgres")
		if err == nil {
			db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
			db.Close()
		}
	})
	return pgServer + "/" + name
}

// pgBin finds a PostgreSQL server program: on PATH, or where Debian puts it.
func pgBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) > 0 {
		return matches[len(matches)-1], nil
	}
	return "", fmt.Errorf("%s not found: install PostgreSQL (apt-get install postgresql), or set %s", name, PostgresEnv)
}

func startPostgres() (string, error) {
	initdb, err := pgBin("initdb")
	if err != nil {
		return "", err
	}
	postgres, err := pgBin("postgres")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "tokend-pg")
	if err != nil {
		return "", err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 { // PostgreSQL refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", fmt.Errorf("running as root, and there is no postgres user to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", err
		}
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(initdb, "-D", data, "-U", "tokend", "--auth=trust", "-E", "UTF8", "--no-instructions")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	// Durability off: a test server's data needs to survive nothing.
	srv := exec.Command(postgres, "-D", data, "-p", strconv.Itoa(port), "-h", "127.0.0.1", "-k", dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300")
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	logFile, err := os.Create(filepath.Join(os.TempDir(), fmt.Sprintf("tokend-pg-%d.log", port)))
	if err == nil {
		srv.Stdout, srv.Stderr = logFile, logFile
	}
	if err := srv.Start(); err != nil {
		return "", fmt.Errorf("start postgres: %w", err)
	}
	url := fmt.Sprintf("postgres://tokend@127.0.0.1:%d", port)
	db, err := sql.Open("pgx", url+"/postgres")
	if err != nil {
		return "", err
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return url, nil
		}
		if time.Now().After(deadline) {
			srv.Process.Kill()
			return "", fmt.Errorf("postgres did not start within 30 s: %v (log: %s)", err, logFile.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
