package main

// The cloud KMS providers, linked in so that a key reference such as
// awskms:///alias/ward-dev, gcpkms://projects/…, azurekms://…, hashivault://…
// or openbao://… works for bundle-signing keys (bundle/keys) and for
// ImagePolicy key.kms (admission/imageverify) without plugin programs. Each
// provider takes its credentials from its SDK's usual chain (environment,
// shared config, the workload identity of the Pod's service account).
import (
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)
