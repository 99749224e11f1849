// Package kmstest runs local stand-ins for cloud KMS services, spoken to
// by the providers' own clients: Google Cloud KMS over gRPC (the client's
// own transport, pointed at a loopback server) and Azure Key Vault over
// HTTPS (reached through a loopback proxy). Each holds one ECDSA P-256
// signing key and answers only what sigstore's providers ask.
package kmstest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"hash/crc32"
	"net"
	"testing"

	kmspb "cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// GCP is a Cloud KMS stand-in holding one asymmetric signing key.
type GCP struct {
	kmspb.UnimplementedKeyManagementServiceServer

	// Key is the resource name of the key, Ref its gcpkms:// reference.
	Key, Ref string
	// Options point sigstore's GCP provider at the stand-in.
	Options []signature.RPCOption
	// Public is the key's public half.
	Public crypto.PublicKey

	priv *ecdsa.PrivateKey
}

// StartGCP serves a Cloud KMS stand-in on loopback until the test ends.
func StartGCP(t testing.TB) *GCP {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	g := &GCP{
		Key:    "projects/ward-test/locations/europe-west1/keyRings/ward/cryptoKeys/dev",
		Public: priv.Public(),
		priv:   priv,
	}
	g.Ref = "gcpkms://" + g.Key
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	kmspb.RegisterKeyManagementServiceServer(s, g)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	g.Options = []signature.RPCOption{
		gcp.WithGoogleAPIClientOption(option.WithEndpoint(l.Addr().String())),
		gcp.WithGoogleAPIClientOption(option.WithoutAuthentication()),
		gcp.WithGoogleAPIClientOption(option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials()))),
	}
	return g
}

func (g *GCP) version() string { return g.Key + "/cryptoKeyVersions/1" }

// GetCryptoKey implements KeyManagementServiceServer.
func (g *GCP) GetCryptoKey(_ context.Context, r *kmspb.GetCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	if r.GetName() != g.Key {
		return nil, status.Errorf(codes.NotFound, "CryptoKey %s not found", r.GetName())
	}
	return &kmspb.CryptoKey{Name: g.Key, Purpose: kmspb.CryptoKey_ASYMMETRIC_SIGN}, nil
}

func (g *GCP) keyVersion() *kmspb.CryptoKeyVersion {
	return &kmspb.CryptoKeyVersion{Name: g.version(), State: kmspb.CryptoKeyVersion_ENABLED, Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256}
}

// GetCryptoKeyVersion implements KeyManagementServiceServer.
func (g *GCP) GetCryptoKeyVersion(_ context.Context, r *kmspb.GetCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	if r.GetName() != g.version() {
		return nil, status.Errorf(codes.NotFound, "CryptoKeyVersion %s not found", r.GetName())
	}
	return g.keyVersion(), nil
}

// ListCryptoKeyVersions implements KeyManagementServiceServer.
func (g *GCP) ListCryptoKeyVersions(_ context.Context, r *kmspb.ListCryptoKeyVersionsRequest) (*kmspb.ListCryptoKeyVersionsResponse, error) {
	if r.GetParent() != g.Key {
		return nil, status.Errorf(codes.NotFound, "CryptoKey %s not found", r.GetParent())
	}
	return &kmspb.ListCryptoKeyVersionsResponse{CryptoKeyVersions: []*kmspb.CryptoKeyVersion{g.keyVersion()}, TotalSize: 1}, nil
}

// GetPublicKey implements KeyManagementServiceServer.
func (g *GCP) GetPublicKey(_ context.Context, r *kmspb.GetPublicKeyRequest) (*kmspb.PublicKey, error) {
	if r.GetName() != g.version() {
		return nil, status.Errorf(codes.NotFound, "CryptoKeyVersion %s not found", r.GetName())
	}
	pem, err := cryptoutils.MarshalPublicKeyToPEM(g.Public)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &kmspb.PublicKey{Name: r.GetName(), Pem: string(pem), Algorithm: kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256}, nil
}

// AsymmetricSign implements KeyManagementServiceServer, checking the
// request's CRC32C as Cloud KMS does.
func (g *GCP) AsymmetricSign(_ context.Context, r *kmspb.AsymmetricSignRequest) (*kmspb.AsymmetricSignResponse, error) {
	if r.GetName() != g.version() {
		return nil, status.Errorf(codes.NotFound, "CryptoKeyVersion %s not found", r.GetName())
	}
	digest := r.GetDigest().GetSha256()
	if len(digest) != 32 {
		return nil, status.Error(codes.InvalidArgument, "EC_SIGN_P256_SHA256 needs a SHA-256 digest")
	}
	table := crc32.MakeTable(crc32.Castagnoli)
	verified := false
	if c := r.GetDigestCrc32C(); c != nil {
		if int64(crc32.Checksum(digest, table)) != c.GetValue() {
			return nil, status.Error(codes.InvalidArgument, "digest_crc32c does not match")
		}
		verified = true
	}
	sig, err := ecdsa.SignASN1(rand.Reader, g.priv, digest)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &kmspb.AsymmetricSignResponse{
		Name: r.GetName(), Signature: sig, VerifiedDigestCrc32C: verified,
		SignatureCrc32C: wrapperspb.Int64(int64(crc32.Checksum(sig, table))),
	}, nil
}
