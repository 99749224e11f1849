package imageverify_test

import (
	"crypto"
	"errors"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature/kms"

	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/internal/imagesign"
	"ward.dev/ward/internal/kmstest"
	"ward.dev/ward/internal/signtest"
)

func TestVerifyKMSKey(t *testing.T) {
	key := signtest.NewKey(t)
	signtest.RegisterKMS("wardverifykms://", key.Signer)
	host := signtest.Registry(t, true)
	d := signtest.PushImage(t, host+"/app:v1")
	signtest.SignBundle(t, d, key)
	v := imageverify.New()
	res, err := v.Verify(t.Context(), d, authority(t, "  - name: kms\n    key: {kms: 'wardverifykms://release'}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The same key given as PEM is the same signer.
	pem, err := v.Verify(t.Context(), d, keyAuthority(t, key, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Signers) != 1 || res.Signers[0] != pem.Signers[0] {
		t.Errorf("signers = %v via KMS, %v via PEM", res.Signers, pem.Signers)
	}
	_, err = v.Verify(t.Context(), d, authority(t, "  - name: kms\n    key: {kms: 'nosuchkms://release'}\n"), nil)
	if !errors.Is(err, imageverify.ErrConfig) {
		t.Fatalf("unknown KMS: err = %v, want ErrConfig", err)
	}
}

// Google Cloud KMS through sigstore's provider and the Cloud KMS client's
// own gRPC transport, pointed at a loopback stand-in: an image signed with
// the KMS key verifies by key.kms, the public key read from the service.
func TestVerifyGCPKMSKey(t *testing.T) {
	g := kmstest.StartGCP(t)
	signer, err := kms.Get(t.Context(), g.Ref, crypto.SHA256, g.Options...)
	if err != nil {
		t.Fatal(err)
	}
	host := signtest.Registry(t, true)
	signed := signtest.PushImage(t, host+"/app:v1")
	if err := imagesign.SignLegacy(signed, signed, signer); err != nil {
		t.Fatal(err)
	}
	unsigned := signtest.PushImage(t, host+"/other:v1")
	v := imageverify.New(imageverify.WithKMSOptions(g.Options...))
	a := authority(t, "  - name: gcp\n    key: {kms: '"+g.Ref+"'}\n")
	if _, err := v.Verify(t.Context(), signed, a, nil); err != nil {
		t.Fatalf("signed with the Cloud KMS key: %v", err)
	}
	if _, err := v.Verify(t.Context(), unsigned, a, nil); !errors.Is(err, imageverify.ErrNoSignatures) {
		t.Fatalf("unsigned: err = %v", err)
	}
}
