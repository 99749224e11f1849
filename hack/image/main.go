// Command image builds ward's container image without a Docker engine: a
// single layer holding the static ward binary and the system's CA bundle on
// an empty base, run as a non-root user, and pushes it to a registry (with
// the Docker config's credentials) or writes it as a tarball.
//
//	go run ./hack/image --binary bin/ward --image registry.example.com/ward:v0.1.0
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	binary := flag.String("binary", "bin/ward", "the ward binary (build it with CGO_ENABLED=0: make build does)")
	image := flag.String("image", "", "where to push the image, e.g. registry.example.com/ward:v0.1.0")
	out := flag.String("tarball", "", "write the image to this tarball instead of pushing it")
	caBundle := flag.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA certificates for registries and Git hosts")
	flag.Parse()
	if err := run(*binary, *image, *out, *caBundle); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

func run(binary, image, out, caBundle string) error {
	if image == "" {
		return errors.New("--image is required (the name to tag, and to push to unless --tarball)")
	}
	img, err := Build(binary, caBundle)
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(image)
	if err != nil {
		return err
	}
	if out != "" {
		return tarball.WriteToFile(out, ref, img)
	}
	if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return err
	}
	d, _ := img.Digest()
	fmt.Printf("%s@%s\n", ref.Context(), d)
	return nil
}

// Build makes the image: /ward, /etc/ssl/certs/ca-certificates.crt, user
// 65532, entrypoint /ward. Files carry a fixed time, so the same binary
// gives the same image.
func Build(binary, caBundle string) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("failed to read the binary: %w", err)
	}
	ca, err := os.ReadFile(caBundle)
	if err != nil {
		return nil, fmt.Errorf("failed to read the CA bundle: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"ward", 0o755, bin}, {"etc/ssl/certs/ca-certificates.crt", 0o644, ca}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromReader(&buf)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Config.Entrypoint = []string{"/ward"}
	cfg.Config.User = "65532:65532"
	cfg.Config.Env = []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cfg.Created = v1.Time{Time: epoch}
	return mutate.ConfigFile(img, cfg)
}
