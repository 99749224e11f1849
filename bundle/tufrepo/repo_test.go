package tufrepo_test

import (
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"ward.dev/ward/bundle"
	"ward.dev/ward/bundle/tuflayout"
	"ward.dev/ward/bundle/tufrepo"
	"ward.dev/ward/internal/tuftest"
)

// k-of-n: with prod at 2 of 3 keys, any two sign; one does not.
func TestPublishNeedsTheThreshold(t *testing.T) {
	r := tuftest.NewRepo(t, tuftest.Options{Keys: map[string]int{"prod": 3}, Thresholds: map[string]int{"prod": 2}})
	data := tuftest.Bundle(t, map[string]string{"p.yaml": "a: 1\n"})
	one := tufrepo.Signers{"prod": r.Signers["prod"][2:], "snapshot": r.Signers["snapshot"], "timestamp": r.Signers["timestamp"]}
	if _, err := r.Repo.Publish("prod", data, one); !errors.Is(err, tufrepo.ErrThreshold) {
		t.Fatalf("one of 2 keys: got %v, want ErrThreshold", err)
	}
	// The same key given twice still counts once.
	twice := tufrepo.Signers{"prod": {r.Signers["prod"][0], r.Signers["prod"][0]}, "snapshot": r.Signers["snapshot"], "timestamp": r.Signers["timestamp"]}
	if _, err := r.Repo.Publish("prod", data, twice); !errors.Is(err, tufrepo.ErrThreshold) {
		t.Fatalf("one key twice: got %v, want ErrThreshold", err)
	}
	two := tufrepo.Signers{"prod": r.Signers["prod"][1:], "snapshot": r.Signers["snapshot"], "timestamp": r.Signers["timestamp"]}
	rel, err := r.Repo.Publish("prod", data, two)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Version != 1 {
		t.Fatalf("%+v", rel)
	}
	// A failed signing wrote nothing: the repository still loads.
	if cur, err := r.Current("prod"); err != nil || cur.Version != 1 {
		t.Fatalf("current %+v %v", cur, err)
	}
}

func TestPublishRefusesABrokenBundle(t *testing.T) {
	r := tuftest.NewRepo(t, tuftest.Options{})
	if _, err := r.Repo.Publish("dev", []byte("not a bundle"), r.Signers); !errors.Is(err, bundle.ErrCorrupt) {
		t.Fatalf("got %v", err)
	}
}

func TestLoadNamesACorruptRepository(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(t *testing.T, r *tuftest.Repo)
		want   string
	}{
		{"tampered bundle file", func(t *testing.T, r *tuftest.Repo) {
			rel := r.Publish(t, "dev", "a: 1\n")
			r.Write(t, tuflayout.TargetFile("dev", strings.TrimPrefix(rel.Digest, "sha256:")), []byte("x"))
		}, "does not match its metadata"},
		{"root chain with a gap", func(t *testing.T, r *tuftest.Repo) {
			r.Write(t, "metadata/3.root.json", r.Read(t, "metadata/1.root.json"))
		}, "not a chain"},
		{"timestamp signed by the wrong key", func(t *testing.T, r *tuftest.Repo) {
			r.Write(t, tuflayout.TimestampMetadata, r.Read(t, r.Name(t, "snapshot", 0)))
		}, "timestamp"},
		{"missing snapshot", func(t *testing.T, r *tuftest.Repo) {
			os.Remove(r.Path(r.Name(t, "snapshot", 0)))
		}, "snapshot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tuftest.NewRepo(t, tuftest.Options{})
			tt.break_(t, r)
			_, err := r.Current("dev")
			if !errors.Is(err, tufrepo.ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrCorrupt naming %q", err, tt.want)
			}
		})
	}
}

func TestRollbackAndPromoteEdges(t *testing.T) {
	r := tuftest.NewRepo(t, tuftest.Options{})
	if _, err := r.Repo.Promote("dev", "prod", r.Signers); err == nil || !strings.Contains(err.Error(), "no bundle yet") {
		t.Fatalf("promote from empty: %v", err)
	}
	r.Publish(t, "dev", "a: 1\n")
	r.Publish(t, "dev", "a: 2\n")
	for _, v := range []int64{0, 2, 3} {
		if _, err := r.Repo.Rollback("dev", v, r.Signers); err == nil {
			t.Fatalf("rollback to %d accepted", v)
		}
	}
	if _, err := r.Repo.Promote("dev", "dev", r.Signers); err == nil {
		t.Fatal("promote to itself accepted")
	}
	if _, err := r.Repo.Promote("dev", "qa", r.Signers); !errors.Is(err, tufrepo.ErrUnknownEnv) {
		t.Fatalf("promote to unknown env: %v", err)
	}
	p1, _ := r.Repo.Promote("dev", "prod", r.Signers)
	p2, _ := r.Repo.Promote("dev", "prod", r.Signers)
	if p1.Unchanged || !p2.Unchanged || p2.Version != 1 {
		t.Fatalf("promote twice: %+v %+v", p1, p2)
	}
	hist, err := r.History("dev")
	if err != nil || len(hist) != 2 || hist[1].Version != 2 {
		t.Fatalf("history %+v %v", hist, err)
	}
}

func TestRotateRefusesWithoutTheOldRootThreshold(t *testing.T) {
	r := tuftest.NewRepo(t, tuftest.Options{Keys: map[string]int{"root": 3}, Thresholds: map[string]int{"root": 2}})
	newKey := tuftest.NewSigner(t)
	pub, _ := newKey.PublicKey()
	signers := tufrepo.Signers{"root": {r.Signers["root"][0], newKey}, "snapshot": r.Signers["snapshot"], "timestamp": r.Signers["timestamp"]}
	_, err := r.Rotate(map[string]tufrepo.KeyChange{"root": {Keys: []crypto.PublicKey{pub}, Threshold: 1}}, signers)
	if !errors.Is(err, tufrepo.ErrThreshold) || !strings.Contains(err.Error(), "current root keys") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(r.Path("metadata/2.root.json")); err == nil {
		t.Fatal("a refused rotation wrote 2.root.json")
	}
	signers["root"] = append(signers["root"], r.Signers["root"][1])
	rot, err := r.Rotate(map[string]tufrepo.KeyChange{"root": {Keys: []crypto.PublicKey{pub}, Threshold: 1}}, signers)
	if err != nil || rot.RootVersion != 2 {
		t.Fatalf("%+v %v", rot, err)
	}
}

// A bundle of the same policy files built at a later commit (CI committed
// the TUF repository back, or a merge changed only the README) signs
// nothing; changed policies sign the next version.
func TestPublishSamePoliciesAtALaterCommit(t *testing.T) {
	r := tuftest.NewRepo(t, tuftest.Options{})
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, _ := repo.Worktree()
	commit := func(file, content string) []byte {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, file)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Add(file); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Commit(file, &git.CommitOptions{Author: &object.Signature{Name: "t", Email: "t@example.com", When: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		b, err := bundle.Build(filepath.Join(dir, "policies"))
		if err != nil {
			t.Fatal(err)
		}
		return b.Bytes
	}
	first, err := r.Repo.Publish("dev", commit("policies/a.yaml", "a: 1\n"), r.Signers)
	if err != nil || first.Version != 1 {
		t.Fatalf("first publish: %+v %v", first, err)
	}
	again, err := r.Repo.Publish("dev", commit("tuf/timestamp.json", "{}\n"), r.Signers)
	if err != nil || !again.Unchanged || again.Version != 1 || again.Digest != first.Digest {
		t.Fatalf("same policies at a later commit: %+v %v", again, err)
	}
	next, err := r.Repo.Publish("dev", commit("policies/a.yaml", "a: 2\n"), r.Signers)
	if err != nil || next.Unchanged || next.Version != 2 {
		t.Fatalf("changed policies: %+v %v", next, err)
	}
}
