// Package gittest runs a real Git server for tests: `git http-backend`
// (from the system's git) behind Go's net/http/cgi, with basic auth, on a
// loopback port.
package gittest

import (
	"encoding/pem"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ward.dev/ward/internal/gitserver"
)

// Server is a running Git smart-HTTP server.
type Server struct {
	// URL is the server's base URL; repositories are URL + "/" + name.
	URL  string
	Root string
	User string
	Pass string
	srv  *httptest.Server
}

// Start runs a server until the test ends. Every request needs the basic
// auth credentials User and Pass.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{Root: t.TempDir(), User: "ward", Pass: "git-s3cret"}
	h, err := gitserver.Handler(s.Root, s.User, s.Pass)
	if err != nil {
		t.Fatalf("%v: run `make test` (it installs git)", err)
	}
	s.srv = httptest.NewServer(h)
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL
	return s
}

// TLSServer serves the same repositories over https with a bearer token,
// from a test CA.
type TLSServer struct {
	URL   string
	Token string
	// CAPEM is the certificate clients must trust.
	CAPEM []byte
}

// StartTLS serves s's repositories over https to requests with
// "Authorization: Bearer <Token>", until the test ends.
func (s *Server) StartTLS(t testing.TB) *TLSServer {
	t.Helper()
	ts := &TLSServer{Token: "bearer-t0ken"}
	h, err := gitserver.BearerHandler(s.Root, ts.Token)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	ts.URL = srv.URL
	ts.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return ts
}

// Close stops the server (a Git host going down).
func (s *Server) Close() { s.srv.Close() }

// NewRepo makes an empty bare repository that accepts pushes and returns
// its URL.
func (s *Server) NewRepo(t testing.TB, name string) string {
	t.Helper()
	if err := gitserver.InitBare(filepath.Join(s.Root, name)); err != nil {
		t.Fatal(err)
	}
	return s.URL + "/" + name
}

// AuthURL is a repository URL with the credentials in it, for the git CLI.
func (s *Server) AuthURL(repoURL string) string {
	return strings.Replace(repoURL, "http://", "http://"+s.User+":"+s.Pass+"@", 1)
}

// Run runs a command in dir and fails the test on error.
func Run(t testing.TB, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
