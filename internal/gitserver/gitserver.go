// Package gitserver serves Git repositories over smart HTTP with the
// system's `git http-backend` behind Go's net/http/cgi and basic auth: a
// real Git server for the demo and the tests, on a loopback port.
package gitserver

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Handler serves the repositories below root to one user.
func Handler(root, user, pass string) (http.Handler, error) {
	return handler(root, func(r *http.Request) (string, bool) {
		u, p, ok := r.BasicAuth()
		return u, ok && subtle.ConstantTimeCompare([]byte(u), []byte(user)) == 1 && subtle.ConstantTimeCompare([]byte(p), []byte(pass)) == 1
	})
}

// BearerHandler serves the repositories below root to requests with
// "Authorization: Bearer <token>".
func BearerHandler(root, token string) (http.Handler, error) {
	return handler(root, func(r *http.Request) (string, bool) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return "bearer", ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
	})
}

func handler(root string, allow func(*http.Request) (string, bool)) (http.Handler, error) {
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return nil, fmt.Errorf("git is not installed (it serves the repositories): %w", err)
	}
	backend := cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := allow(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h := backend
		h.Env = append(append([]string{}, backend.Env...), "REMOTE_USER="+u)
		h.ServeHTTP(w, r)
	}), nil
}

// InitBare makes an empty bare repository that accepts pushes over HTTP.
func InitBare(dir string) error {
	for _, args := range [][]string{
		{"init", "-q", "--bare", "-b", "main", dir},
		{"-C", dir, "config", "http.receivepack", "true"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Env = os.Environ()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}
