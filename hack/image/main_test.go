package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestBuildAndPush(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "ward")
	os.WriteFile(bin, []byte("#!/bin/true\n"), 0o755)
	ca := filepath.Join(dir, "ca.crt")
	os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644)
	a, err := Build(bin, ca)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Build(bin, ca)
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatal("the same binary gave two images")
	}
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/ward:test"
	if err := run(bin, ref, "", ca); err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(ref)
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	if cfg.Config.Entrypoint[0] != "/ward" || cfg.Config.User != "65532:65532" {
		t.Fatalf("config = %+v", cfg.Config)
	}
}
