package signtest

import (
	"context"
	"crypto"
	"errors"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
)

// RegisterKMS registers a KMS provider for URIs starting with scheme
// ("wardtest://"), through sigstore's kms package as cloud providers are
// registered; every key it returns is sv.
func RegisterKMS(scheme string, sv signature.SignerVerifier) {
	kms.AddProvider(scheme, func(context.Context, string, crypto.Hash, ...signature.RPCOption) (kms.SignerVerifier, error) {
		return testKMS{sv}, nil
	})
}

type testKMS struct{ signature.SignerVerifier }

func (testKMS) CreateKey(context.Context, string) (crypto.PublicKey, error) { return nil, nil }
func (testKMS) CryptoSigner(context.Context, func(error)) (crypto.Signer, crypto.SignerOpts, error) {
	return nil, nil, errors.New("not supported")
}
func (testKMS) SupportedAlgorithms() []string { return nil }
func (testKMS) DefaultAlgorithm() string      { return "" }
