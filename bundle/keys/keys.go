// Package keys loads and generates the signing keys of a TUF repository:
// private key files in PEM (plain PKCS#8, SEC 1, PKCS#1, or encrypted in
// cosign's format) and any KMS URI that sigstore's signature/kms
// understands (its built-in providers and its plugin programs).
package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// PasswordEnv names the environment variables read, in order, for the
// password of an encrypted key file. COSIGN_PASSWORD is read so that keys
// made by `cosign generate-key-pair` work as they are.
var PasswordEnv = []string{"WARD_KEY_PASSWORD", "COSIGN_PASSWORD"}

// MaxKeyFileBytes bounds a key file read.
const MaxKeyFileBytes = 64 << 10

// ErrNoPassword is returned for an encrypted key file when no password is set.
var ErrNoPassword = errors.New("key file is encrypted and no password is set (WARD_KEY_PASSWORD or COSIGN_PASSWORD)")

// IsKMS reports whether ref is a KMS URI rather than a file path.
func IsKMS(ref string) bool { return strings.Contains(ref, "://") }

// Load returns the signer named by ref: a KMS URI or a private key file.
// kmsOpts go to the KMS provider (its client options: endpoint,
// credentials); a file ignores them.
func Load(ctx context.Context, ref string, kmsOpts ...signature.RPCOption) (signature.SignerVerifier, error) {
	if IsKMS(ref) {
		sv, err := kms.Get(ctx, ref, crypto.SHA256, kmsOpts...)
		if err != nil {
			return nil, fmt.Errorf("failed to load KMS key %s: %w", ref, err)
		}
		// Some providers connect lazily: ask for the public key now, so a
		// missing key or credential fails here, named, not at signing.
		if _, err := sv.PublicKey(); err != nil {
			return nil, fmt.Errorf("failed to load KMS key %s: %w", ref, err)
		}
		return sv, nil
	}
	data, err := readBounded(ref)
	if err != nil {
		return nil, fmt.Errorf("failed to load key %s: %w", ref, err)
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(data, password)
	if errors.Is(err, ErrNoPassword) {
		// No password given: a key encrypted with an empty one (what
		// `ward init` writes for cosign without WARD_KEY_PASSWORD) still
		// opens.
		if p, perr := cryptoutils.UnmarshalPEMToPrivateKey(data, func(bool) ([]byte, error) { return []byte{}, nil }); perr == nil {
			priv, err = p, nil
		}
	}
	if err != nil {
		if errors.Is(err, ErrNoPassword) {
			return nil, fmt.Errorf("failed to load key %s: %w", ref, ErrNoPassword)
		}
		return nil, fmt.Errorf("failed to load key %s: not a PEM private key, or a wrong password: %w", ref, err)
	}
	sv, err := signature.LoadSignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("failed to load key %s: %w", ref, err)
	}
	return sv, nil
}

func password(bool) ([]byte, error) {
	for _, env := range PasswordEnv {
		if v, ok := os.LookupEnv(env); ok {
			return []byte(v), nil
		}
	}
	return nil, ErrNoPassword
}

// TUFKey returns the TUF key and key ID of a signer's public key.
func TUFKey(s signature.Signer) (*metadata.Key, string, error) {
	pub, err := s.PublicKey()
	if err != nil {
		return nil, "", fmt.Errorf("failed to read public key: %w", err)
	}
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return nil, "", fmt.Errorf("failed to convert public key: %w", err)
	}
	id, err := k.ID()
	if err != nil {
		return nil, "", err
	}
	return k, id, nil
}

// Generate writes a new ECDSA P-256 key pair: the private key to privPath
// (mode 0600; encrypted in cosign's format when pass is not empty) and the
// public key beside it with the extension ".pub". It refuses to overwrite.
func Generate(privPath string, pass []byte) (pubPath string, err error) {
	return generate(privPath, pass, len(pass) > 0)
}

// GenerateCosign writes a key pair as `cosign generate-key-pair` does: the
// private key always in cosign's encrypted format, with pass (which may be
// empty: cosign then reads it with COSIGN_PASSWORD set to ""), so that
// cosign's own key loader reads it.
func GenerateCosign(privPath string, pass []byte) (pubPath string, err error) {
	return generate(privPath, pass, true)
}

func generate(privPath string, pass []byte, encrypt bool) (pubPath string, err error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	var privPEM []byte
	if encrypt {
		der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(priv, func(bool) ([]byte, error) { return pass, nil })
		if err != nil {
			return "", err
		}
		privPEM = cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, der)
	} else if privPEM, err = cryptoutils.MarshalPrivateKeyToPEM(priv); err != nil {
		return "", err
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return "", err
	}
	pubPath = strings.TrimSuffix(privPath, filepath.Ext(privPath)) + ".pub"
	if err := os.MkdirAll(filepath.Dir(privPath), 0o700); err != nil {
		return "", err
	}
	if err := writeNew(privPath, privPEM, 0o600); err != nil {
		return "", err
	}
	if err := writeNew(pubPath, pubPEM, 0o644); err != nil {
		return "", err
	}
	return pubPath, nil
}

// LoadPublic reads a PEM public key file.
func LoadPublic(path string) (crypto.PublicKey, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, fmt.Errorf("failed to load public key %s: %w", path, err)
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("failed to load public key %s: %w", path, err)
	}
	return pub, nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return f.Close()
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxKeyFileBytes {
		return nil, fmt.Errorf("file is over %d bytes", MaxKeyFileBytes)
	}
	return data, nil
}
