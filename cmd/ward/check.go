package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/workload"
	"ward.dev/ward/internal/manifests"
)

type checkOptions struct {
	outputOptions
	policySourceOptions
	registryOptions
	files     []string
	namespace string
}

func newCheckCommand() *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check -f FILE... (--bundle FILE | --repo DIR --env ENV | --policies DIR)",
		Short: "Run the webhook's own decision on manifests, offline",
		Long: `Decide, as the admission webhook would, whether the workloads in the given
manifests may run: the same policy matching, signature verification (both
cosign formats, against the registries, with the Docker config's
credentials), ValidationPolicies and modes. No cluster is needed.

Objects of kinds that carry no Pod spec are skipped; Namespace objects in the
input supply labels for namespaceSelector policies, and Secret objects the
keys that policies name with key.secretRef (matched by name). Objects
without a namespace are checked in --namespace. What policies read from the
cluster rather than the signed bundle is printed as a "note:" line.

Exit codes: 0 every workload allowed (warnings included), 1 any denied,
2 an error (bad input, policies that do not compile, a bundle that does not
verify).`,
		Example: `  # Against what prod enforces, verified through the pinned root:
  ward check -f deploy/ --repo . --env prod --root prod-root.json

  # Against a bundle file, as JSON:
  ward check -f app.yaml --bundle bundle.tar.gz -o json

  # Against the working tree's policies, before a pull request:
  kubectl kustomize overlays/prod | ward check -f - --policies policies/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	cmd.Flags().StringArrayVarP(&o.files, "filename", "f", nil, "manifest file or folder, or - for stdin (repeatable)")
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "default", "namespace of objects that name none")
	o.outputOptions.bind(cmd)
	o.policySourceOptions.bind(cmd)
	o.registryOptions.bind(cmd)
	return cmd
}

// checkResult is one object's outcome.
type checkResult struct {
	Source    string              `json:"source"`
	Kind      string              `json:"kind"`
	Namespace string              `json:"namespace,omitempty"`
	Name      string              `json:"name"`
	Skipped   bool                `json:"skipped,omitempty"`
	Allowed   bool                `json:"allowed"`
	Message   string              `json:"message,omitempty"`
	Warnings  []string            `json:"warnings,omitempty"`
	Decision  *admission.Decision `json:"decision,omitempty"`
}

type checkReport struct {
	Allowed bool                   `json:"allowed"`
	Bundles []admission.Provenance `json:"bundles"`
	// ClusterReferences are what the policies read from the cluster,
	// outside the bundle's signatures.
	ClusterReferences []string      `json:"clusterReferences,omitempty"`
	Results           []checkResult `json:"results"`
}

func (o *checkOptions) run(cmd *cobra.Command) error {
	if len(o.files) == 0 {
		return fmt.Errorf("no manifests: pass -f FILE (or -f - for stdin)")
	}
	objs, err := manifests.Read(o.files, cmd.InOrStdin())
	if err != nil {
		return err
	}
	st, err := o.load(cmd)
	if err != nil {
		return err
	}
	d, err := o.decider(objs)
	if err != nil {
		return err
	}
	rep := checkReport{Allowed: true, Bundles: st.Bundles}
	for _, r := range st.Set.ClusterReferences() {
		rep.ClusterReferences = append(rep.ClusterReferences, r.String())
	}
	for _, obj := range objs {
		r, err := decideObject(cmd.Context(), d, st, obj, o.namespace, o.timeout)
		if err != nil {
			return err
		}
		if !r.Allowed {
			rep.Allowed = false
		}
		rep.Results = append(rep.Results, r)
	}
	err = o.print(cmd, rep, func(p printer) {
		labels := make([]string, len(rep.Bundles))
		for i, b := range rep.Bundles {
			labels[i] = b.Label()
		}
		p.line("checked against %s", strings.Join(labels, ", "))
		for _, r := range rep.ClusterReferences {
			p.line("note: %s", r)
		}
		for _, r := range rep.Results {
			id := r.Kind + " " + qualified(r.Namespace, r.Name)
			switch {
			case r.Skipped:
				p.line("SKIPPED  %s (no Pod spec)", id)
			case !r.Allowed:
				p.line("DENIED   %s: %s", id, r.Message)
			case len(r.Warnings) > 0:
				p.line("WARNED   %s: %s", id, strings.Join(r.Warnings, "; "))
			default:
				p.line("ALLOWED  %s", id)
			}
		}
	})
	if err != nil {
		return err
	}
	if !rep.Allowed {
		return failed(fmt.Errorf("denied: %d of %d objects", countDenied(rep.Results), len(rep.Results)))
	}
	return nil
}

func countDenied(rs []checkResult) int {
	n := 0
	for _, r := range rs {
		if !r.Allowed {
			n++
		}
	}
	return n
}

func qualified(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// decider is the registry decider with namespace labels from the input.
func (o *checkOptions) decider(objs []manifests.Object) (*admission.Decider, error) {
	return o.registryOptions.deciderWith(namespaceLabels(objs), manifestSecrets(objs))
}

// manifestSecrets reads the Secrets a policy names (key.secretRef) from
// the Secret objects among the manifests, by name: ward check has no
// cluster, and no controller namespace to look in.
func manifestSecrets(objs []manifests.Object) admission.SecretFunc {
	secrets := map[string]map[string][]byte{}
	for _, obj := range objs {
		if obj.Kind != "Secret" {
			continue
		}
		var s struct {
			Data       map[string][]byte `json:"data"`
			StringData map[string]string `json:"stringData"`
		}
		if err := json.Unmarshal(obj.Raw, &s); err != nil {
			continue
		}
		data := map[string][]byte{}
		maps.Copy(data, s.Data)
		for k, v := range s.StringData {
			data[k] = []byte(v)
		}
		secrets[obj.Name] = data
	}
	return func(_ context.Context, name string) (map[string][]byte, error) {
		data, ok := secrets[name]
		if !ok {
			return nil, fmt.Errorf("the key is in Secret %s: give it to ward check with -f (ward check reads no cluster)", name)
		}
		return data, nil
	}
}

func namespaceLabels(objs []manifests.Object) admission.NamespaceLabelsFunc {
	labels := map[string]map[string]string{}
	for _, obj := range objs {
		if obj.Kind == "Namespace" {
			labels[obj.Name] = obj.Labels
		}
	}
	return func(_ context.Context, ns string) (map[string]string, error) {
		l := map[string]string{"kubernetes.io/metadata.name": ns}
		for k, v := range labels[ns] {
			l[k] = v
		}
		return l, nil
	}
}

// decideObject runs the decision for one manifest object.
func decideObject(ctx context.Context, d *admission.Decider, st *admission.State, obj manifests.Object, defaultNS string, timeout time.Duration) (checkResult, error) {
	r := checkResult{Source: obj.Source, Kind: obj.Kind, Namespace: obj.Namespace, Name: obj.Name, Allowed: true}
	if !workload.Supported(obj.Kind) {
		r.Skipped = true
		return r, nil
	}
	if r.Namespace == "" {
		r.Namespace = defaultNS
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dec, err := d.Decide(ctx, st, admission.Request{Kind: obj.Kind, Namespace: r.Namespace, Name: obj.Name, Operation: "CREATE", Object: obj.Raw})
	if err != nil {
		return r, fmt.Errorf("%s (%s): %w", obj.ID(), obj.Source, err)
	}
	r.Decision, r.Allowed, r.Message, r.Warnings = dec, dec.Allowed, dec.Message(), dec.Warnings()
	return r, nil
}
