package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/memfs"
	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// PushGit commits the TUF repository in dir (metadata/ and targets/) to
// the branch and folder of dst, replacing what was there, and pushes it.
// The branch is made if it does not exist. It returns the commit, or ""
// when there was nothing to commit.
func PushGit(ctx context.Context, dir string, dst *Git, message string) (string, error) {
	boundGitHTTP()
	branch := dst.Branch
	if branch == "" {
		branch = "main"
	}
	ref := plumbing.NewBranchReferenceName(branch)
	wt := memfs.New()
	repo, err := git.CloneContext(ctx, memory.NewStorage(), wt, &git.CloneOptions{
		URL: dst.URL, Auth: dst.Auth, ReferenceName: ref, SingleBranch: true, Depth: 1, Tags: git.NoTags,
	})
	fresh := false
	if err != nil {
		if !errors.Is(err, plumbing.ErrReferenceNotFound) && !strings.Contains(err.Error(), "couldn't find remote ref") && !errors.Is(err, git.ErrRepositoryNotExists) && !strings.Contains(err.Error(), "remote repository is empty") {
			return "", fmt.Errorf("failed to clone %s %s: %s", redactURL(dst.URL), branch, redactErr(err, dst.URL))
		}
		// A new branch (or an empty repository).
		fresh = true
		wt = memfs.New()
		if repo, err = git.Init(memory.NewStorage(), wt); err != nil {
			return "", err
		}
		if _, err := repo.CreateRemote(&gitconfig.RemoteConfig{Name: "origin", URLs: []string{dst.URL}}); err != nil {
			return "", err
		}
		if err := repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, ref)); err != nil {
			return "", err
		}
	}
	w, err := repo.Worktree()
	if err != nil {
		return "", err
	}
	base := strings.Trim(dst.Path, "/")
	for _, top := range []string{"metadata", "targets"} {
		target := path.Join(base, top)
		if err := removeAll(wt, target); err != nil {
			return "", err
		}
		if err := copyInto(wt, filepath.Join(dir, top), target); err != nil {
			return "", err
		}
	}
	if err := w.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return "", err
	}
	st, err := w.Status()
	if err != nil {
		return "", err
	}
	if st.IsClean() && !fresh {
		return "", nil
	}
	sig := &object.Signature{Name: "ward", Email: "ward@localhost", When: time.Now()}
	hash, err := w.Commit(message, &git.CommitOptions{Author: sig, AllowEmptyCommits: fresh})
	if err != nil {
		return "", err
	}
	spec := gitconfig.RefSpec(fmt.Sprintf("%s:%s", ref, ref))
	if err := repo.PushContext(ctx, &git.PushOptions{RemoteName: "origin", RefSpecs: []gitconfig.RefSpec{spec}, Auth: dst.Auth}); err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return "", fmt.Errorf("failed to push to %s %s: %s", redactURL(dst.URL), branch, redactErr(err, dst.URL))
	}
	return hash.String(), nil
}

func removeAll(fsys billy.Filesystem, p string) error {
	infos, err := fsys.ReadDir(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, fi := range infos {
		child := path.Join(p, fi.Name())
		if fi.IsDir() {
			if err := removeAll(fsys, child); err != nil {
				return err
			}
		}
		if err := fsys.Remove(child); err != nil {
			return err
		}
	}
	return nil
}

func copyInto(fsys billy.Filesystem, src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := path.Join(dst, filepath.ToSlash(rel))
		if d.IsDir() {
			return fsys.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f, err := fsys.Create(to)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}
