package source

import (
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
)

// dockerConfigKeychain resolves credentials from a .dockerconfigjson.
func dockerConfigKeychain(data []byte) (authn.Keychain, error) {
	var cfg struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("not a .dockerconfigjson: %w", err)
	}
	return dockerKeychain(cfg.Auths), nil
}

type dockerKeychain map[string]authn.AuthConfig

func (k dockerKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	for _, key := range []string{r.RegistryStr(), "https://" + r.RegistryStr(), "http://" + r.RegistryStr()} {
		if c, ok := k[key]; ok {
			return authn.FromConfig(c), nil
		}
	}
	return authn.Anonymous, nil
}
