package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"ward.dev/ward/bundle"
	"ward.dev/ward/convert"
	"ward.dev/ward/internal/manifests"
	"ward.dev/ward/policies"
)

func newConvertCommand() *cobra.Command {
	var files []string
	var outDir string
	cmd := &cobra.Command{
		Use:   "convert -f FILE... [-o DIR]",
		Short: "Convert Kyverno verifyImages rules into ward ImagePolicies",
		Long: `Convert the verifyImages rules of Kyverno ClusterPolicies and Policies
(kyverno.io/v1) into ward ImagePolicies, one per attestor set (every set must
pass, as every matching ImagePolicy must). Attestor entries become
authorities and count the threshold; keys (publicKeys, kms, secret) and
keyless identities (subject and issuer, wildcards as regular expressions)
keep their meaning, Kyverno's default public Rekor and Fulcio become
references to the TrustRoot ` + convert.PublicGoodTrustRoot + `; attestations
become authorities with attestations, their conditions CEL over predicate;
repository and imageRegistryCredentials become a signature source;
validationFailureAction or failureAction the mode; match kinds, namespaces
and namespaceSelector the match.

Nothing is converted into a weaker policy. What ward cannot express with the
same meaning is either converted stricter (skipImageReferences, exclude,
match by labels: more is checked) or not converted at all (tag- or
digest-specific references, nested attestors, JMESPath functions, Notary):
each is printed, with the reason, on standard error. The documents are
compiled before they are written.

Exit codes: 0 everything converted (stricter notes included), 1 something
was not converted (the rest is written), 2 bad input.`,
		Example: `  ward convert -f kyverno/verify-images.yaml -o policies/
  kubectl get clusterpolicies -o yaml | ward convert -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return errors.New("no input: pass -f FILE (or -f - for stdin)")
			}
			res := &convert.Result{}
			for _, f := range files {
				if err := convertPath(cmd, f, res); err != nil {
					return err
				}
			}
			// The documents must compile, with the public-good TrustRoot
			// they may refer to standing in.
			standIn, err := publicGoodStandIn()
			if err != nil {
				return err
			}
			docs := []bundle.Document{{Path: "stand-in/" + convert.PublicGoodTrustRoot + ".yaml", Data: standIn}}
			for _, o := range res.Outputs {
				docs = append(docs, bundle.Document{Path: o.Name + ".yaml", Data: o.Data})
			}
			if _, err := policies.Compile(docs); err != nil {
				return fmt.Errorf("the converted documents do not compile (a bug in ward convert): %w", err)
			}
			for _, n := range res.Notes {
				progress(cmd, "%s", n)
			}
			if err := writeConverted(cmd, res, outDir); err != nil {
				return err
			}
			if res.Skipped() {
				return failed(fmt.Errorf("some rules were not converted (see above); documents written: %d", len(res.Outputs)))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "Kyverno policy file or folder, or - for stdin (repeatable)")
	cmd.Flags().StringVarP(&outDir, "output-dir", "o", "", "folder to write one file per document (default: standard output)")
	return cmd
}

func convertPath(cmd *cobra.Command, path string, res *convert.Result) error {
	add := func(name string, data []byte) error {
		r, err := convert.Kyverno(name, data)
		if err != nil {
			return err
		}
		res.Outputs = append(res.Outputs, r.Outputs...)
		res.Notes = append(res.Notes, r.Notes...)
		return nil
	}
	if path == "-" {
		data, err := manifests.ReadAll(cmd.InOrStdin(), "standard input")
		if err != nil {
			return err
		}
		return add("stdin", data)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		data, err := readFileBounded(path)
		if err != nil {
			return err
		}
		return add(path, data)
	}
	return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			return err
		}
		data, err := readFileBounded(p)
		if err != nil {
			return err
		}
		return add(p, data)
	})
}

func writeConverted(cmd *cobra.Command, res *convert.Result, dir string) error {
	if dir == "" {
		for i, o := range res.Outputs {
			if i > 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "---")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# converted from %s\n%s", o.From, o.Data)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, o := range res.Outputs {
		p := filepath.Join(dir, o.Name+".yaml")
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists: not overwritten (remove it or choose another --output-dir)", p)
		}
		if err := os.WriteFile(p, []byte("# converted from "+o.From+"\n"+string(o.Data)), 0o644); err != nil {
			return err
		}
		progress(cmd, "wrote %s", p)
	}
	return nil
}

// publicGoodStandIn is a TrustRoot with a fresh CA and key that lets
// converted documents referring to the public-good TrustRoot compile
// before it is imported.
func publicGoodStandIn() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stand-in"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM, err := cryptoutils.MarshalPublicKeyToPEM(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	log := []policies.TransparencyLogInstance{{BaseURL: "https://stand-in", HashAlgorithm: "sha-256", PublicKey: keyPEM}}
	doc := policies.TrustRootDoc{APIVersion: policies.SigstoreGroup + "/v1alpha1", Kind: policies.KindTrustRoot, Metadata: policies.ObjectMeta{Name: convert.PublicGoodTrustRoot},
		Spec: policies.TrustRootSpec{SigstoreKeys: &policies.SigstoreKeys{
			CertificateAuthorities: []policies.CertificateAuthority{{URI: "https://stand-in", CertChain: certPEM}},
			TLogs:                  log, CTLogs: log}}}
	return yaml.Marshal(doc)
}

// readFileBounded reads a policy file of at most manifests.MaxFileBytes.
func readFileBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return manifests.ReadAll(f, path)
}
