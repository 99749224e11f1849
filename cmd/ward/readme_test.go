package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeBlock returns the first ```sh block after heading in README.md.
func readmeBlock(t *testing.T, heading string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q", heading)
	}
	m := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(after)
	if m == nil {
		t.Fatalf("no sh block after %q", heading)
	}
	return m[1]
}

// The README's five-minute tour runs as printed: every command, in a
// fresh folder, with the ward binary on the PATH and an editor that
// changes the policy; a clone of the result verifies as the controller
// would verify it.
func TestReadmeTour(t *testing.T) {
	block := readmeBlock(t, "## A five-minute tour")
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "ward"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	editor := filepath.Join(bin, "edit")
	if err := os.WriteFile(editor, []byte("#!/bin/sh\necho '# tightened in the tour' >> \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(tmp, "work")
	os.MkdirAll(work, 0o755)
	run := func(script string) string {
		t.Helper()
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "EDITOR="+editor, "HOME="+tmp,
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return string(out)
	}
	out := run(block)
	if !strings.Contains(out, "reproducible") {
		t.Fatalf("the tour's builds differ:\n%s", out)
	}
	// Nothing is left uncommitted, and a clone verifies.
	if status := run("cd my-policies && git status --porcelain"); strings.TrimSpace(status) != "" {
		t.Fatalf("uncommitted after the tour:\n%s", status)
	}
	run("git clone -q my-policies clone && cd clone && ward verify --env staging --root ../staging-root.json --state-dir ../clone-state")
}
