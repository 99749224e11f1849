package syncer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"ward.dev/ward/sync/source"
	"ward.dev/ward/sync/syncer"
)

// A FIFO put in place of timestamp.json in a folder source: the sync is
// refused at once (it used to block forever on the open), and the last
// verified bundle stays enforced.
func TestFIFOInAFolderSourceIsRefused(t *testing.T) {
	e := newEnv(t)
	s := e.syncer(t, "")
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	ts := filepath.Join(e.repo.Dir, "metadata", "timestamp.json")
	os.Remove(ts)
	if err := syscall.Mkfifo(ts, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Sync(t.Context(), "prod") }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("err = %v, want a refusal naming the FIFO", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the sync blocked on a FIFO")
	}
	if st := status(t, s); st.Ready || st.State != syncer.StateEnforcing || !e.allowed(t, "v1") {
		t.Fatalf("after the refusal: %+v", st)
	}
}

// hangingSource works until hang is closed... then blocks in Open without
// heeding its context, as a fetch stuck in a syscall would.
type hangingSource struct {
	source.Source
	hang    chan struct{}
	release chan struct{}
}

func (h *hangingSource) Open(ctx context.Context) (source.Snapshot, error) {
	select {
	case <-h.hang:
		<-h.release
		return nil, errors.New("released")
	default:
		return h.Source.Open(ctx)
	}
}

// A sync whose fetch never returns is reported failed at its timeout, and
// onExpiry deny-all takes effect on time while it hangs: taking the source
// down in a way that blocks cannot keep an expired bundle enforced.
func TestHungSyncTimesOutAndExpiryStillApplies(t *testing.T) {
	e := newEnv(t)
	src := &hangingSource{Source: source.Dir{Path: e.repo.Dir}, hang: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(src.release) })
	// The loop reads the clock while the test moves it: an atomic clock.
	var now atomic.Int64
	now.Store(e.clock.T.UnixNano())
	s, err := syncer.New([]syncer.Spec{{Name: "prod", Env: "prod", Root: e.root, Source: src, OnExpiry: syncer.OnExpiryDenyAll,
		Timeout: 200 * time.Millisecond, Interval: time.Hour}}, e.stateDir, e.policies, syncer.WithClock(func() time.Time { return time.Unix(0, now.Load()) }))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(t.Context(), "prod"); err != nil {
		t.Fatal(err)
	}
	close(src.hang)
	start := time.Now()
	err = s.Sync(t.Context(), "prod")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("hung sync: %v after %s", err, time.Since(start))
	}
	if st := status(t, s); st.Ready || st.LastReason != syncer.ReasonFetchFailed || !e.allowed(t, "v1") {
		t.Fatalf("after the timeout: %+v", st)
	}
	// The loop runs (its syncs hang); the clock passes the metadata's
	// expiry: deny-all applies without any sync finishing.
	run(t, s)
	now.Add(int64(48 * time.Hour))
	waitFor(t, func() bool { return status(t, s).State == syncer.StateDenyAll })
	if e.allowed(t, "v1") {
		t.Fatal("an expired bundle is still enforced under onExpiry deny-all")
	}
}
