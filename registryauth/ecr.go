package registryauth

import (
	"context"
	"time"

	"github.com/awslabs/amazon-ecr-credential-helper/ecr-login/api"
	"github.com/google/go-containerregistry/pkg/authn"
)

// ecrTokenLife is how long an ECR token is used: ECR issues them for 12
// hours; one is asked for again well before.
const ecrTokenLife = time.Hour

// ecr authenticates to Amazon ECR with the ECR credential helper's client.
type ecr struct {
	factory api.ClientFactory
	cache   cache
}

func newECR(o options) *ecr {
	return &ecr{factory: api.DefaultClientFactory{}, cache: cache{now: o.now}}
}

func (e *ecr) handles(host string) bool {
	_, err := api.ExtractRegistry(host)
	return err == nil
}

func (e *ecr) resolve(ctx context.Context, host string) (authn.Authenticator, error) {
	return e.cache.get(host, func() (authn.Authenticator, time.Time, error) {
		reg, err := api.ExtractRegistry(host)
		if err != nil {
			return nil, time.Time{}, errorf(AWS, host, err)
		}
		region := reg.Region
		if reg.Service == api.ServiceECRPublic {
			region = "us-east-1" // ECR Public's tokens come from there
		}
		var client api.Client
		if reg.FIPS {
			client, err = e.factory.NewClientWithFipsEndpoint(ctx, region)
		} else {
			client, err = e.factory.NewClientFromRegion(ctx, region)
		}
		if err != nil {
			return nil, time.Time{}, errorf(AWS, host, err)
		}
		auth, err := client.GetCredentials(ctx, host)
		if err != nil {
			return nil, time.Time{}, errorf(AWS, host, err)
		}
		return &authn.Basic{Username: auth.Username, Password: auth.Password}, now(e.cache.now).Add(ecrTokenLife), nil
	})
}

func now(f func() time.Time) time.Time {
	if f != nil {
		return f()
	}
	return time.Now()
}
