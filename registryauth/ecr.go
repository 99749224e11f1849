package registryauth

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecrpublic"
	"github.com/awslabs/amazon-ecr-credential-helper/ecr-login/api"
	"github.com/google/go-containerregistry/pkg/authn"
)

// ecrPublicRegion is where ECR Public's tokens come from.
const ecrPublicRegion = "us-east-1"

// ecrAuth authenticates to Amazon ECR: a token from ECR's
// GetAuthorizationToken with the AWS SDK's credential chain, kept until
// shortly before it expires (ECR gives 12 hours). The registry is parsed
// as the ECR credential helper parses it; its file cache is not used.
type ecrAuth struct{ cache cache }

func newECR(o options) *ecrAuth { return &ecrAuth{cache: cache{now: o.now}} }

func (e *ecrAuth) handles(host string) bool {
	_, err := api.ExtractRegistry(host)
	return err == nil
}

func (e *ecrAuth) resolve(ctx context.Context, host string) (authn.Authenticator, error) {
	return e.cache.get(host, func() (authn.Authenticator, time.Time, error) {
		auth, expires, err := ecrToken(ctx, host)
		if err != nil {
			return nil, time.Time{}, errorf(AWS, host, err)
		}
		return auth, expires, nil
	})
}

func ecrToken(ctx context.Context, host string) (authn.Authenticator, time.Time, error) {
	reg, err := api.ExtractRegistry(host)
	if err != nil {
		return nil, time.Time{}, err
	}
	opts := []func(*awsconfig.LoadOptions) error{}
	switch {
	case reg.Service == api.ServiceECRPublic:
		opts = append(opts, awsconfig.WithRegion(ecrPublicRegion))
	default:
		opts = append(opts, awsconfig.WithRegion(reg.Region))
		if reg.FIPS {
			opts = append(opts, awsconfig.WithUseFIPSEndpoint(aws.FIPSEndpointStateEnabled))
		}
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, time.Time{}, err
	}
	var token string
	var expires *time.Time
	if reg.Service == api.ServiceECRPublic {
		out, err := ecrpublic.NewFromConfig(cfg).GetAuthorizationToken(ctx, &ecrpublic.GetAuthorizationTokenInput{})
		if err != nil {
			return nil, time.Time{}, err
		}
		if out.AuthorizationData != nil {
			token, expires = aws.ToString(out.AuthorizationData.AuthorizationToken), out.AuthorizationData.ExpiresAt
		}
	} else {
		out, err := ecr.NewFromConfig(cfg).GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
		if err != nil {
			return nil, time.Time{}, err
		}
		if len(out.AuthorizationData) > 0 {
			token, expires = aws.ToString(out.AuthorizationData[0].AuthorizationToken), out.AuthorizationData[0].ExpiresAt
		}
	}
	decoded, err := base64.StdEncoding.DecodeString(token)
	user, password, ok := strings.Cut(string(decoded), ":")
	if err != nil || !ok || expires == nil {
		return nil, time.Time{}, errors.New("ECR answered without a usable authorization token")
	}
	return &authn.Basic{Username: user, Password: password}, *expires, nil
}
