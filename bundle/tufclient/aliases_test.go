package tufclient_test

import (
	"crypto"

	"github.com/sigstore/sigstore/pkg/signature"
)

type (
	tufrepoSigner    = signature.Signer
	tufrepoPublicKey = crypto.PublicKey
)
