package imageverify

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// MaxPlatforms bounds how many manifests of an image index are read for
// their config files.
const MaxPlatforms = 32

// ConfigFiles reads an image's config files, keyed by platform as
// policy-controller's policy result keys them: "{os}/{architecture}" with
// ":{osVersion}" and "/{variant}" when set ("linux/amd64",
// "linux/arm/v7"). An index gives one per manifest, at most MaxPlatforms.
// Registry failures wrap ErrUnavailable.
func (v *Verifier) ConfigFiles(ctx context.Context, img name.Digest, kc authn.Keychain) (map[string]json.RawMessage, error) {
	opts := v.remoteOptions(ctx, kc)
	desc, err := remote.Get(img, opts...)
	if err != nil {
		return nil, unavailable(fmt.Sprintf("failed to read %s: %s", img, brief(err)))
	}
	out := map[string]json.RawMessage{}
	switch desc.MediaType {
	case types.OCIImageIndex, types.DockerManifestList:
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not an image index: %s", ErrConfig, img, brief(err))
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, unavailable(fmt.Sprintf("failed to read the index of %s: %s", img, brief(err)))
		}
		if len(im.Manifests) > MaxPlatforms {
			return nil, fmt.Errorf("%w: %s lists %d manifests, over the limit of %d", ErrConfig, img, len(im.Manifests), MaxPlatforms)
		}
		for _, m := range im.Manifests {
			d := img.Context().Digest(m.Digest.String())
			md, err := remote.Get(d, opts...)
			if err != nil {
				return nil, unavailable(fmt.Sprintf("failed to read %s: %s", d, brief(err)))
			}
			if err := addConfig(out, md, d); err != nil {
				return nil, err
			}
		}
	default:
		if err := addConfig(out, desc, img); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func addConfig(out map[string]json.RawMessage, desc *remote.Descriptor, d name.Digest) error {
	switch desc.MediaType {
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
	default:
		return fmt.Errorf("%w: %s is a %s, not an image", ErrConfig, d, desc.MediaType)
	}
	im, err := desc.Image()
	if err != nil {
		return fmt.Errorf("%w: %s: %s", ErrConfig, d, brief(err))
	}
	cf, err := im.ConfigFile()
	if err != nil {
		return unavailable(fmt.Sprintf("failed to read the config file of %s: %s", d, brief(err)))
	}
	raw, err := json.Marshal(cf)
	if err != nil {
		return fmt.Errorf("%w: %s: %s", ErrConfig, d, brief(err))
	}
	p := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, OSVersion: cf.OSVersion, Variant: cf.Variant}
	out[p.String()] = raw
	return nil
}
