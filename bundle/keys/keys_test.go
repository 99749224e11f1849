package keys_test

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"

	"ward.dev/ward/bundle/keys"
	"ward.dev/ward/internal/kmstest"
	"ward.dev/ward/internal/signtest"
)

func TestLoadFileAndKMS(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.key")
	pub, err := keys.Generate(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Generate(path, nil); err == nil {
		t.Fatal("Generate overwrote an existing key")
	}
	s, err := keys.Load(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := keys.LoadPublic(pub)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.PublicKey()
	if !got.(interface{ Equal(crypto.PublicKey) bool }).Equal(want) {
		t.Fatal("public key file does not match the private key")
	}

	signtest.RegisterKMS("wardtest://", s)
	ks, err := keys.Load(t.Context(), "wardtest://keys/dev")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ks.SignMessage(bytes.NewReader([]byte("m")))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifySignature(bytes.NewReader(sig), bytes.NewReader([]byte("m"))); err != nil {
		t.Fatalf("KMS signature does not verify: %v", err)
	}
	_, id1, _ := keys.TUFKey(s)
	_, id2, _ := keys.TUFKey(ks)
	if id1 != id2 {
		t.Fatal("same key, different TUF key IDs")
	}
	if _, err := keys.Load(t.Context(), "nosuchkms://x"); err == nil {
		t.Fatal("unknown KMS accepted")
	}
}

// Google Cloud KMS through sigstore's provider and the Cloud KMS client's
// own gRPC transport, pointed at a loopback stand-in: the key signs, its
// public key is the service's.
func TestLoadGCPKMS(t *testing.T) {
	g := kmstest.StartGCP(t)
	s, err := keys.Load(t.Context(), g.Ref, g.Options...)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.SignMessage(bytes.NewReader([]byte("m")))
	if err != nil {
		t.Fatal(err)
	}
	v, err := signature.LoadVerifier(g.Public, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.VerifySignature(bytes.NewReader(sig), bytes.NewReader([]byte("m"))); err != nil {
		t.Fatalf("Cloud KMS signature does not verify with the service's public key: %v", err)
	}
	if pub, err := s.PublicKey(); err != nil || !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(g.Public) {
		t.Fatalf("public key %v (%v), want the service's", pub, err)
	}
	if _, err := keys.Load(t.Context(), g.Ref+"x", g.Options...); err == nil {
		t.Fatal("a key the service does not have loaded")
	}
}

func TestLoadRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.key")
	os.WriteFile(big, make([]byte, keys.MaxKeyFileBytes+1), 0o600)
	notKey := filepath.Join(dir, "pub.key")
	keys.Generate(filepath.Join(dir, "x.key"), nil)
	data, _ := os.ReadFile(filepath.Join(dir, "x.pub"))
	os.WriteFile(notKey, data, 0o600)
	enc := filepath.Join(dir, "enc.key")
	keys.Generate(enc, []byte("pw"))
	for _, v := range keys.PasswordEnv {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	for name, path := range map[string]string{"oversized": big, "public key": notKey, "missing": filepath.Join(dir, "none.key")} {
		if _, err := keys.Load(t.Context(), path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := keys.Load(t.Context(), enc); !errors.Is(err, keys.ErrNoPassword) {
		t.Errorf("encrypted key without a password: %v", err)
	}
	t.Setenv("COSIGN_PASSWORD", "pw")
	if _, err := keys.Load(t.Context(), enc); err != nil {
		t.Errorf("encrypted key with COSIGN_PASSWORD: %v", err)
	}
}
