package imageverify_test

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature"
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
	// The first decision's context ends with it; the provider's client,
	// kept for later decisions, must not (sigstore's providers keep the
	// context they were made with).
	first, cancel := context.WithCancel(t.Context())
	if _, err := v.Verify(first, signed, a, nil); err != nil {
		t.Fatalf("signed with the Cloud KMS key: %v", err)
	}
	cancel()
	other := signtest.PushImage(t, host+"/app:v2")
	if err := imagesign.SignLegacy(other, other, signer); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), other, a, nil); err != nil {
		t.Fatalf("a later decision, the first one's context cancelled: %v", err)
	}
	if _, err := v.Verify(t.Context(), unsigned, a, nil); !errors.Is(err, imageverify.ErrNoSignatures) {
		t.Fatalf("unsigned: err = %v", err)
	}
}

// ctxKMS is a KMS provider that, like sigstore's Azure and Vault
// providers, keeps the context it was made with and uses it for each
// verification.
type ctxKMS struct {
	kms.SignerVerifier
	ctx context.Context
}

func (c ctxKMS) VerifySignature(sig, msg io.Reader, opts ...signature.VerifyOption) error {
	if err := c.ctx.Err(); err != nil {
		return fmt.Errorf("the provider's context: %w", err)
	}
	return c.SignerVerifier.VerifySignature(sig, msg, opts...)
}

// A KMS key outlives the decision that first loaded it: a provider that
// keeps its context still verifies after that decision's context ended.
func TestKMSKeyOutlivesTheFirstDecision(t *testing.T) {
	key := signtest.NewKey(t)
	signtest.RegisterKMS("wardctxbase://", key.Signer)
	kms.AddProvider("wardctxkms://", func(ctx context.Context, _ string, h crypto.Hash, opts ...signature.RPCOption) (kms.SignerVerifier, error) {
		base, err := kms.Get(ctx, "wardctxbase://k", h, opts...)
		if err != nil {
			return nil, err
		}
		return ctxKMS{base, ctx}, nil
	})
	host := signtest.Registry(t, true)
	a := authority(t, "  - name: kms\n    key: {kms: 'wardctxkms://release'}\n")
	v := imageverify.New()
	first, cancel := context.WithCancel(t.Context())
	d := signtest.PushImage(t, host+"/app:v1")
	signtest.SignLegacy(t, d, key)
	if _, err := v.Verify(first, d, a, nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	d2 := signtest.PushImage(t, host+"/app:v2")
	signtest.SignLegacy(t, d2, key)
	if _, err := v.Verify(t.Context(), d2, a, nil); err != nil {
		t.Fatalf("after the first decision's context ended: %v", err)
	}
}
