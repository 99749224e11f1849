package source

import (
	"fmt"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// GitAuth builds Git credentials from a secret's data, as Flux reads them:
// "username" and "password" (a token goes in password) for http(s);
// "identity" (a private key, with "password" if encrypted) and
// "known_hosts" for ssh. An ssh secret without known_hosts is refused: the
// host key must be checked.
func GitAuth(url string, data map[string][]byte) (transport.AuthMethod, error) {
	if strings.HasPrefix(url, "http://") || strings.HasPrefix(url, "https://") {
		if token := string(data["bearerToken"]); token != "" {
			return &githttp.TokenAuth{Token: token}, nil
		}
		user := string(data["username"])
		pass := string(data["password"])
		if pass == "" && len(data["ca.crt"]) > 0 {
			return nil, nil // a CA only: no credentials
		}
		if pass == "" {
			return nil, fmt.Errorf("no password, token or bearerToken for %s", redactURL(url))
		}
		if user == "" {
			user = "git" // token authentication ignores the name
		}
		return &githttp.BasicAuth{Username: user, Password: pass}, nil
	}
	identity := data["identity"]
	if len(identity) == 0 {
		return nil, fmt.Errorf("no identity (ssh private key) for %s", url)
	}
	hosts := data["known_hosts"]
	if len(hosts) == 0 {
		return nil, fmt.Errorf("no known_hosts for %s: the host key must be checked", url)
	}
	user := "git"
	if u, _, ok := strings.Cut(strings.TrimPrefix(url, "ssh://"), "@"); ok && !strings.Contains(u, "/") {
		user = u
	}
	keys, err := gitssh.NewPublicKeys(user, identity, string(data["password"]))
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	cb, err := knownHostsCallback(hosts)
	if err != nil {
		return nil, err
	}
	keys.HostKeyCallback = cb
	return keys, nil
}

// knownHostsCallback checks host keys against known_hosts lines.
func knownHostsCallback(data []byte) (ssh.HostKeyCallback, error) {
	// x/crypto reads known_hosts from files, once, at construction.
	f, err := os.CreateTemp("", "ward-known-hosts-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	cb, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	return cb, nil
}
