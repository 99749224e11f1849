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

// shell runs README snippets as a reader would: ward on the PATH, an
// editor that changes the file it is given, a home of its own.
type shell struct{ bin, editor, home string }

func newShell(t *testing.T) *shell {
	t.Helper()
	home := t.TempDir()
	sh := &shell{bin: filepath.Join(home, "bin"), home: home}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(sh.bin, "ward"), ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sh.editor = filepath.Join(sh.bin, "edit")
	if err := os.WriteFile(sh.editor, []byte("#!/bin/sh\necho '# tightened in the tour' >> \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return sh
}

// run runs script in dir with bash -euo pipefail, bounded in time (a
// snippet that waits for something never true ends), and returns its
// output.
func (sh *shell) run(t *testing.T, dir, script string) string {
	t.Helper()
	cmd := exec.Command("timeout", "120", "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+sh.bin+":"+os.Getenv("PATH"), "EDITOR="+sh.editor, "HOME="+sh.home,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return string(out)
}

// The README's five-minute tour and its controller snippet run as
// printed, in a fresh folder; nothing is left uncommitted, and a clone of
// the result verifies as the controller would verify it.
func TestReadmeTour(t *testing.T) {
	sh := newShell(t)
	work := filepath.Join(sh.home, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if out := sh.run(t, work, readmeBlock(t, "## A five-minute tour")); !strings.Contains(out, "reproducible") {
		t.Fatalf("the tour's builds differ:\n%s", out)
	}
	if status := sh.run(t, work, "cd my-policies && git status --porcelain"); strings.TrimSpace(status) != "" {
		t.Fatalf("uncommitted after the tour:\n%s", status)
	}
	sh.run(t, work, "git clone -q my-policies clone && cd clone && ward verify --env staging --root ../staging-root.json --state-dir ../clone-state")

	// Running the controller, from where the tour ended, on its default
	// ports; then stopped.
	out := sh.run(t, filepath.Join(work, "my-policies"), readmeBlock(t, "## Run the controller")+"\nkill %1\nwait || true\n")
	if !strings.Contains(out, "ward_source_state") || !strings.Contains(out, "enforcing") {
		t.Fatalf("the controller snippet:\n%s", out)
	}
}
