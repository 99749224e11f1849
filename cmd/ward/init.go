package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ward.dev/ward/bundle/keys"
	"ward.dev/ward/bundle/tuflayout"
	"ward.dev/ward/bundle/tufrepo"
	"ward.dev/ward/internal/notarycerts"
	"ward.dev/ward/internal/policyrepo"
)

type initOptions struct {
	envs       []string
	counts     []string
	thresholds []string
	policies   string
	tuf        string
	notation   bool
}

// examplePolicy is written with the public key of keys/cosign.key, the
// image-signing key init makes.
const examplePolicy = `# An ImagePolicy: images matching the globs must be signed by the key below
# (keys/cosign.pub; sign with: cosign sign --key keys/cosign.key IMAGE).
# Field names follow sigstore policy-controller's ClusterImagePolicy.
apiVersion: policy.ward.dev/v1
kind: ImagePolicy
metadata:
  name: signed-team-images
spec:
  mode: enforce            # enforce | warn | audit
  images:
    - glob: "registry.example.com/team/**"
  authorities:
    - name: team-key
      key:
        data: |
%s
`

// exampleNotationAuthority is added to the example policy by --notation:
// images signed by the Notation test chain init makes pass too.
const exampleNotationAuthority = `    # Or a Notary Project signature by the test chain in keys/notation.crt
    # (sign with: notation sign --key ward-example IMAGE; see docs/policies.md).
    # For production, put your CA's root certificate in trustStore.ca.
    - name: team-notation
      notation:
        trustStore:
          ca:
            data: |
%s
        trustedIdentities:
          - "x509.subject: %s"
        signatureVerification:
          level: strict      # strict | permissive | audit | skip
`

// exampleTest is a PolicyTest that needs no registry: an image no policy
// matches is denied.
const exampleTest = `# Policy test cases, run by ` + "`ward test`" + `.
apiVersion: policy.ward.dev/v1
kind: PolicyTest
metadata:
  name: example
spec:
  namespace: apps
  cases:
    - name: images no policy covers are denied
      object:
        apiVersion: v1
        kind: Pod
        metadata: {name: stray}
        spec:
          containers:
            - name: app
              image: docker.io/library/busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000
      expect: denied
      reason: no ImagePolicy matches
`

func newInitCommand() *cobra.Command {
	o := initOptions{}
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Make a policy repository with a TUF repository and fresh keys",
		Long: `Make a policy repository in DIR (default: the current folder):

  ward.yaml     where the policies and the TUF repository are, and the keys
  policies/     the policy documents, with an example trusting keys/cosign.pub
  tests/        policy test cases for ` + "`ward test`" + `
  tuf/          a TUF repository: root, targets, snapshot, timestamp and one
                delegated role per environment, signed with fresh keys
  keys/         the private keys (ECDSA P-256), git-ignored; move the root
                and targets keys offline, keep snapshot and timestamp in CI;
                cosign.key signs images (cosign sign --key keys/cosign.key)

With --notation, keys/ also gets a Notary Project test chain for notation
sign (notation.key, and notation.crt: the leaf then its root CA, valid for a
year) and the example policy trusts it too: a cosign key OR a Notation
identity. notation.key is never encrypted: notation reads plain keys.

Each role gets one key and threshold 1, except root: 3 keys, threshold 2.
Set WARD_KEY_PASSWORD to encrypt the new keys (cosign's format).`,
		Example: `  ward init my-policies
  ward init --envs dev,prod --keys prod=3 --threshold prod=2 my-policies
  ward init --notation my-policies`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return o.run(cmd, dir)
		},
	}
	cmd.Flags().StringSliceVar(&o.envs, "envs", []string{"dev", "staging", "prod"}, "environments, in promotion order")
	cmd.Flags().StringArrayVar(&o.counts, "keys", nil, "how many keys a role gets, ROLE=N (repeatable)")
	cmd.Flags().StringArrayVar(&o.thresholds, "threshold", nil, "how many of a role's keys must sign, ROLE=N (repeatable)")
	cmd.Flags().StringVar(&o.policies, "policies", "policies", "policy folder, relative to DIR")
	cmd.Flags().StringVar(&o.tuf, "tuf", "tuf", "TUF repository folder, relative to DIR")
	cmd.Flags().BoolVar(&o.notation, "notation", false, "also make a Notary Project test certificate chain (keys/notation.key, keys/notation.crt) and trust it in the example policy")
	return cmd
}

func parseRoleInts(flag string, values []string, roles []string) (map[string]int, error) {
	out := map[string]int{}
	for _, v := range values {
		role, n, ok := strings.Cut(v, "=")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || i < 1 {
			return nil, fmt.Errorf("--%s %q: want ROLE=N with N at least 1", flag, v)
		}
		if err := checkRole(flag, role, roles); err != nil {
			return nil, err
		}
		out[role] = i
	}
	return out, nil
}

// checkRole fails unless role is one of roles, naming the flag.
func checkRole(flag, role string, roles []string) error {
	if !slices.Contains(roles, role) {
		return fmt.Errorf("--%s: unknown role %q (roles: %s)", flag, role, strings.Join(roles, ", "))
	}
	return nil
}

func (o *initOptions) run(cmd *cobra.Command, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, policyrepo.FileName)); err == nil {
		return fmt.Errorf("%s already has a %s; ward init makes a new policy repository", dir, policyrepo.FileName)
	}
	if len(o.envs) == 0 {
		return errors.New("--envs: at least one environment is needed")
	}
	for _, env := range o.envs {
		if err := tuflayout.ValidateEnv(env); err != nil {
			return fmt.Errorf("--envs: %w", err)
		}
	}
	roles := append(tuflayout.TopLevelRoles(), o.envs...)
	counts, err := parseRoleInts("keys", o.counts, roles)
	if err != nil {
		return err
	}
	thresholds, err := parseRoleInts("threshold", o.thresholds, roles)
	if err != nil {
		return err
	}
	if _, ok := counts[tuflayout.Root]; !ok {
		counts[tuflayout.Root] = 3
	}
	if _, ok := thresholds[tuflayout.Root]; !ok {
		thresholds[tuflayout.Root] = min(2, counts[tuflayout.Root])
	}
	for _, role := range roles {
		if counts[role] == 0 {
			counts[role] = 1
		}
		if thresholds[role] == 0 {
			thresholds[role] = 1
		}
		if thresholds[role] > counts[role] {
			return fmt.Errorf("role %s: threshold %d is more than its %d key(s)", role, thresholds[role], counts[role])
		}
	}
	tufDir := filepath.Join(dir, o.tuf)
	if _, err := os.Stat(filepath.Join(tufDir, tuflayout.MetadataDir)); err == nil {
		return fmt.Errorf("%s already holds a TUF repository", tufDir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", dir, err)
	}

	cfg := policyrepo.Config{
		APIVersion: policyrepo.APIVersion, Kind: policyrepo.Kind,
		Policies: o.policies, TUF: o.tuf, Environments: o.envs, Keys: map[string][]string{},
	}
	pass := []byte(os.Getenv("WARD_KEY_PASSWORD"))
	signers := tufrepo.Signers{}
	for _, role := range roles {
		for i := range counts[role] {
			name := role + ".key"
			if counts[role] > 1 {
				name = fmt.Sprintf("%s-%d.key", role, i+1)
			}
			rel := filepath.ToSlash(filepath.Join("keys", name))
			if _, err := keys.Generate(filepath.Join(dir, rel), pass); err != nil {
				return fmt.Errorf("failed to generate a key for %s: %w", role, err)
			}
			s, err := keys.Load(cmd.Context(), filepath.Join(dir, rel))
			if err != nil {
				return err
			}
			signers[role] = append(signers[role], s)
			cfg.Keys[role] = append(cfg.Keys[role], rel)
		}
	}
	repo := &policyrepo.Repo{Dir: dir, Config: cfg}
	if err := repo.TUF().Create(tufrepo.CreateOptions{Envs: o.envs, Signers: signers, Thresholds: thresholds}); err != nil {
		return fmt.Errorf("failed to create the TUF repository: %w", err)
	}
	if err := repo.Save(); err != nil {
		return err
	}
	if err := os.MkdirAll(repo.PoliciesDir(), 0o755); err != nil {
		return err
	}
	pubPath, err := keys.GenerateCosign(filepath.Join(dir, "keys", "cosign.key"), pass)
	if err != nil {
		return fmt.Errorf("failed to generate the image-signing key: %w", err)
	}
	pub, err := os.ReadFile(pubPath)
	if err != nil {
		return err
	}
	example := filepath.Join(repo.PoliciesDir(), "example-image-policy.yaml")
	policy := fmt.Sprintf(examplePolicy, indentLines(string(pub), 10))
	if o.notation {
		chain, err := writeNotationChain(filepath.Join(dir, "keys"))
		if err != nil {
			return fmt.Errorf("failed to make the Notation test chain: %w", err)
		}
		policy += fmt.Sprintf(exampleNotationAuthority, indentLines(string(chain.RootPEM()), 14), notationSubject(chain.Leaf))
	}
	if err := writeIfAbsent(example, policy); err != nil {
		return err
	}
	if err := writeIfAbsent(filepath.Join(repo.TestsDir(), "example-test.yaml"), exampleTest); err != nil {
		return err
	}
	// Keys, bundle files built by hand and state folders stay out of Git.
	for _, line := range []string{"keys/", "/*.tgz", "/*.tar.gz", ".ward-state/", "ward-state/"} {
		if err := ensureGitignore(dir, line); err != nil {
			return err
		}
	}

	p := printer{cmd.OutOrStdout()}
	p.line("Made a policy repository in %s:", dir)
	p.line("  %-36s configuration", policyrepo.FileName)
	p.line("  %-36s an example ImagePolicy", filepath.ToSlash(filepath.Join(o.policies, "example-image-policy.yaml")))
	p.line("  %-36s a policy test case (ward test)", "tests/example-test.yaml")
	p.line("  %-36s image-signing key (cosign format); the example policy trusts it", "keys/cosign.key")
	if o.notation {
		p.line("  %-36s Notation signing key and test chain; the example policy trusts the chain", "keys/notation.{key,crt}")
	}
	p.line("  %-36s TUF repository for %s; pin %s/metadata/1.root.json in the controller", o.tuf+"/", strings.Join(o.envs, ", "), o.tuf)
	for _, role := range roles {
		p.line("  %-36s %s: %d key(s), threshold %d", "keys/"+role+"*.key", role, counts[role], thresholds[role])
	}
	p.line("  %-36s keeps keys/, bundle files and state folders out of Git", ".gitignore")
	p.line("")
	p.line("Next: edit the policy, commit, then `ward publish --env %s %s`.", o.envs[0], dir)
	return nil
}

// indentLines indents every line of s by n spaces, without a final
// newline.
func indentLines(s string, n int) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+pad)
}

// notationChainLifetime is how long init's Notation test chain is valid.
const notationChainLifetime = 365 * 24 * time.Hour

// writeNotationChain makes a Notary Project test chain into dir:
// notation.key (the leaf's key, PKCS #8, 0600) and notation.crt (leaf
// then root), the files notation's signingkeys.json names.
func writeNotationChain(dir string) (*notarycerts.Chain, error) {
	now := time.Now()
	chain, err := notarycerts.NewChain(notarycerts.Subject("release", "example"), now.Add(-time.Hour), now.Add(notationChainLifetime))
	if err != nil {
		return nil, err
	}
	keyPEM, err := chain.KeyPEM()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{"notation.key", keyPEM, 0o600}, {"notation.crt", chain.ChainPEM(), 0o644}} {
		path := filepath.Join(dir, f.name)
		if _, err := os.Stat(path); err == nil {
			return nil, fmt.Errorf("%s exists; ward init does not overwrite keys", path)
		}
		if err := os.WriteFile(path, f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return chain, nil
}

// notationSubject writes a certificate's subject as notation's trusted
// identities name one: "C=US, ST=WA, O=example, CN=release".
func notationSubject(c *x509.Certificate) string {
	var parts []string
	add := func(attr string, values []string) {
		for _, v := range values {
			parts = append(parts, attr+"="+v)
		}
	}
	add("C", c.Subject.Country)
	add("ST", c.Subject.Province)
	add("O", c.Subject.Organization)
	if c.Subject.CommonName != "" {
		parts = append(parts, "CN="+c.Subject.CommonName)
	}
	return strings.Join(parts, ", ")
}

// writeIfAbsent writes a new file, keeping one that exists.
func writeIfAbsent(path, content string) error {
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

func ensureGitignore(dir, line string) error {
	path := filepath.Join(dir, ".gitignore")
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for l := range strings.SplitSeq(string(data), "\n") {
		if strings.TrimSpace(l) == line {
			return nil
		}
	}
	if len(data) > 0 && !strings.HasSuffix(string(data), "\n") {
		data = append(data, '\n')
	}
	return os.WriteFile(path, append(data, []byte(line+"\n")...), 0o644)
}
