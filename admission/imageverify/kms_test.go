package imageverify_test

import (
	"errors"
	"testing"

	"ward.dev/ward/admission/imageverify"
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
