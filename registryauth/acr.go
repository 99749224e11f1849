package registryauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/go-containerregistry/pkg/authn"
)

// acrTokenLife is how long an ACR refresh token is used: ACR issues them
// for three hours; one is asked for again well before.
const acrTokenLife = time.Hour

// acrUser is the user name that goes with an ACR refresh token.
const acrUser = "00000000-0000-0000-0000-000000000000"

// maxExchangeBytes bounds the registry's answer to a token exchange.
const maxExchangeBytes = 1 << 20

// acr authenticates to Azure Container Registry: an Entra ID token from
// azidentity's default chain, exchanged at the registry's
// /oauth2/exchange for a refresh token.
type acr struct {
	endpoint func(host string) string
	client   *http.Client
	cache    cache

	credOnce sync.Once
	cred     azcore.TokenCredential
	credErr  error
}

func newACR(o options) *acr {
	a := &acr{endpoint: o.acrEndpoint, client: o.httpClient, cache: cache{now: o.now}}
	if a.endpoint == nil {
		a.endpoint = func(host string) string { return "https://" + host }
	}
	if a.client == nil {
		a.client = &http.Client{Timeout: resolveTimeout}
	}
	// The access token goes to the registry it was asked for, never where
	// a redirect points.
	client := *a.client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	a.client = &client
	return a
}

// acrClouds maps a registry suffix to the scope of its cloud's tokens.
var acrClouds = map[string]string{
	".azurecr.io": "https://management.azure.com/.default",
	".azurecr.cn": "https://management.chinacloudapi.cn/.default",
	".azurecr.us": "https://management.usgovcloudapi.net/.default",
}

func acrScope(host string) string {
	for suffix, scope := range acrClouds {
		if strings.HasSuffix(host, suffix) {
			return scope
		}
	}
	return ""
}

func (a *acr) handles(host string) bool { return acrScope(host) != "" }

func (a *acr) resolve(ctx context.Context, host string) (authn.Authenticator, error) {
	return a.cache.get(host, func() (authn.Authenticator, time.Time, error) {
		a.credOnce.Do(func() { a.cred, a.credErr = azidentity.NewDefaultAzureCredential(nil) })
		if a.credErr != nil {
			return nil, time.Time{}, errorf(Azure, host, a.credErr)
		}
		tok, err := a.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{acrScope(host)}})
		if err != nil {
			return nil, time.Time{}, errorf(Azure, host, err)
		}
		refresh, err := a.exchange(ctx, host, tok.Token)
		if err != nil {
			return nil, time.Time{}, errorf(Azure, host, err)
		}
		return &authn.Basic{Username: acrUser, Password: refresh}, now(a.cache.now).Add(acrTokenLife), nil
	})
}

// exchange trades an Entra ID access token for an ACR refresh token.
func (a *acr) exchange(ctx context.Context, host, accessToken string) (string, error) {
	form := url.Values{"grant_type": {"access_token"}, "service": {host}, "access_token": {accessToken}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint(host)+"/oauth2/exchange", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("token exchange: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxExchangeBytes))
	if err != nil {
		return "", fmt.Errorf("token exchange: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token exchange: the registry answered %s", resp.Status)
	}
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.RefreshToken == "" {
		return "", errors.New("token exchange: the registry's answer holds no refresh_token")
	}
	return out.RefreshToken, nil
}
