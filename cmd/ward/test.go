package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"ward.dev/ward/admission"
	"ward.dev/ward/internal/manifests"
	"ward.dev/ward/internal/policyrepo"
	"ward.dev/ward/policies"
)

const testKind = "PolicyTest"

// policyTest is a PolicyTest document: cases of manifests and the verdict
// each must get.
type policyTest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		// Namespace for objects that name none (default "default").
		Namespace string     `json:"namespace,omitempty"`
		Cases     []testCase `json:"cases"`
	} `json:"spec"`
}

type testCase struct {
	Name string `json:"name"`
	// Manifest is a file of objects, relative to the test file.
	Manifest string `json:"manifest,omitempty"`
	// Object is an inline object (instead of Manifest).
	Object json.RawMessage `json:"object,omitempty"`
	// Expect is allowed, denied or warned.
	Expect string `json:"expect"`
	// Reason, when set, must appear in the deny message (denied) or a
	// warning (warned).
	Reason string `json:"reason,omitempty"`
}

type testOptions struct {
	outputOptions
	policySourceOptions
	registryOptions
}

func newTestCommand() *cobra.Command {
	o := &testOptions{}
	cmd := &cobra.Command{
		Use:   "test [DIR]",
		Short: "Run the policy test cases kept beside the policies",
		Long: `Run the PolicyTest documents in the policy repository's tests folder
(ward.yaml "tests", default tests/) against its policies, with the webhook's
own decision code. By default the policies are the working tree's; pass
--bundle or --repo/--env to test what a published bundle enforces.

A PolicyTest:

  apiVersion: policy.ward.dev/v1
  kind: PolicyTest
  metadata: {name: team-images}
  spec:
    namespace: apps                  # for objects that name none
    cases:
    - name: unsigned images are denied
      manifest: manifests/unsigned.yaml   # relative to this file
      expect: denied                 # allowed | denied | warned
      reason: no signatures found    # optional: part of the message
    - name: inline object
      object: {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: c, image: "nginx@sha256:…"}]}}
      expect: allowed

Every workload in a case must get the expected verdict. Exit 1 if a case
fails, 2 on bad input.`,
		Example: `  ward test
  ward test my-policies -o json
  ward test --repo . --env prod     # what prod enforces now`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	o.outputOptions.bind(cmd)
	o.policySourceOptions.bind(cmd)
	o.registryOptions.bind(cmd)
	return cmd
}

type caseResult struct {
	File   string `json:"file"`
	Test   string `json:"test"`
	Case   string `json:"case"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail,omitempty"`
}

type testReport struct {
	Passed  int                    `json:"passed"`
	Failed  int                    `json:"failed"`
	Bundles []admission.Provenance `json:"bundles"`
	Results []caseResult           `json:"results"`
}

func (o *testOptions) run(cmd *cobra.Command, args []string) error {
	dir := "."
	if len(args) == 1 {
		dir = args[0]
	}
	repo, err := policyrepo.Load(dir)
	if err != nil {
		return err
	}
	if o.bundleFile == "" && o.repo == "" && o.env == "" && o.policiesDir == "" {
		o.policiesDir = repo.PoliciesDir()
	}
	st, err := o.load(cmd)
	if err != nil {
		return err
	}
	files, err := testFiles(repo.TestsDir())
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no PolicyTest files in %s", repo.TestsDir())
	}
	d, err := o.deciderWith(nil, nil)
	if err != nil {
		return err
	}
	rep := testReport{Bundles: st.Bundles}
	for _, f := range files {
		results, err := o.runFile(cmd, d, st, repo.Dir, f)
		if err != nil {
			return err
		}
		for _, r := range results {
			if r.Passed {
				rep.Passed++
			} else {
				rep.Failed++
			}
		}
		rep.Results = append(rep.Results, results...)
	}
	err = o.print(cmd, rep, func(p printer) {
		for _, r := range rep.Results {
			if r.Passed {
				p.line("PASS  %s: %s / %s", r.File, r.Test, r.Case)
			} else {
				p.line("FAIL  %s: %s / %s: %s", r.File, r.Test, r.Case, r.Detail)
			}
		}
		p.line("%d passed, %d failed", rep.Passed, rep.Failed)
	})
	if err != nil {
		return err
	}
	if rep.Failed > 0 {
		return failed(fmt.Errorf("%d of %d policy test cases failed", rep.Failed, rep.Passed+rep.Failed))
	}
	return nil
}

func testFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != dir {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		// Only PolicyTest files: manifests referenced by cases live here too.
		var h struct {
			Kind string `json:"kind"`
		}
		if yaml.Unmarshal(firstDoc(data), &h) == nil && h.Kind == testKind {
			out = append(out, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no test folder %s (ward.yaml \"tests\")", dir)
	}
	return out, err
}

func firstDoc(data []byte) []byte {
	s := string(data)
	if strings.HasPrefix(s, "---\n") {
		s = s[4:]
	}
	if i := strings.Index(s, "\n---"); i >= 0 {
		s = s[:i]
	}
	return []byte(s)
}

func (o *testOptions) runFile(cmd *cobra.Command, d *admission.Decider, st *admission.State, repoDir, file string) ([]caseResult, error) {
	rel, _ := filepath.Rel(repoDir, file)
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var t policyTest
	if err := yaml.UnmarshalStrict(data, &t); err != nil {
		return nil, fmt.Errorf("%s: %s", rel, oneLineErr(err))
	}
	if t.APIVersion != policies.APIVersion {
		return nil, fmt.Errorf("%s: apiVersion is %q, want %q", rel, t.APIVersion, policies.APIVersion)
	}
	ns := t.Spec.Namespace
	if ns == "" {
		ns = "default"
	}
	var out []caseResult
	for i, c := range t.Spec.Cases {
		res := caseResult{File: rel, Test: t.Metadata.Name, Case: c.Name}
		if res.Case == "" {
			res.Case = fmt.Sprintf("case %d", i+1)
		}
		if c.Expect != "allowed" && c.Expect != "denied" && c.Expect != "warned" {
			return nil, fmt.Errorf("%s: %s: expect is %q, want allowed, denied or warned", rel, res.Case, c.Expect)
		}
		var objs []manifests.Object
		switch {
		case c.Manifest != "" && len(c.Object) == 0:
			objs, err = manifests.Read([]string{filepath.Join(filepath.Dir(file), c.Manifest)}, nil)
		case c.Manifest == "" && len(c.Object) > 0:
			objs, err = manifests.Parse(rel+": "+res.Case, c.Object)
		default:
			err = errors.New("give exactly one of manifest and object")
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", rel, res.Case, err)
		}
		res.Passed, res.Detail = true, ""
		checked := 0
		for _, obj := range objs {
			r, err := decideObject(cmd.Context(), d, st, obj, ns, o.timeout)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", rel, res.Case, err)
			}
			if r.Skipped {
				continue
			}
			checked++
			if ok, why := verdictMatches(r, c); !ok {
				res.Passed, res.Detail = false, fmt.Sprintf("%s %s: %s", obj.Kind, obj.Name, why)
				break
			}
		}
		if checked == 0 && res.Passed {
			res.Passed, res.Detail = false, "no workload in the case"
		}
		out = append(out, res)
	}
	return out, nil
}

func verdictMatches(r checkResult, c testCase) (bool, string) {
	got := "allowed"
	switch {
	case !r.Allowed:
		got = "denied"
	case len(r.Warnings) > 0:
		got = "warned"
	}
	if got != c.Expect {
		detail := r.Message
		if got == "warned" {
			detail = strings.Join(r.Warnings, "; ")
		}
		if detail != "" {
			return false, fmt.Sprintf("expected %s, got %s (%s)", c.Expect, got, detail)
		}
		return false, fmt.Sprintf("expected %s, got %s", c.Expect, got)
	}
	text := r.Message + " " + strings.Join(r.Warnings, " ")
	if c.Reason != "" && !strings.Contains(text, c.Reason) {
		return false, fmt.Sprintf("%s as expected, but the reason %q is not in %q", got, c.Reason, strings.TrimSpace(text))
	}
	return true, ""
}

func oneLineErr(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
