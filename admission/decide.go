package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/admission/workload"
	"ward.dev/ward/policies"
	"ward.dev/ward/registryauth"
)

// KeychainFunc returns the registry credentials for a workload: its pull
// secrets and its service account's.
type KeychainFunc func(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (authn.Keychain, error)

// NamespaceLabelsFunc returns a namespace's labels, for policies that
// select namespaces by label.
type NamespaceLabelsFunc func(ctx context.Context, namespace string) (map[string]string, error)

// Verifier is what the decider needs of imageverify.Verifier.
type Verifier interface {
	Resolve(ctx context.Context, ref name.Reference, kc authn.Keychain) (name.Digest, error)
	Verify(ctx context.Context, img name.Digest, a *policies.CompiledAuthority, kc authn.Keychain) (*imageverify.Result, error)
}

// Decider makes admission decisions. It is safe for concurrent use.
type Decider struct {
	verifier    Verifier
	cache       *Cache
	keychain    KeychainFunc
	fallback    authn.Keychain
	nsLabels    NamespaceLabelsFunc
	secrets     SecretFunc
	concurrency int
	metrics     *Metrics
	refs        refCache
}

// WithDeciderMetrics records verifications, registry errors and cache
// lookups in m.
func WithDeciderMetrics(m *Metrics) DeciderOption { return func(d *Decider) { d.metrics = m } }

// DefaultConcurrency is how many images of one request are verified at
// once.
const DefaultConcurrency = 16

// WithConcurrency sets how many images of one request are verified at
// once (default DefaultConcurrency).
func WithConcurrency(n int) DeciderOption { return func(d *Decider) { d.concurrency = n } }

// DeciderOption configures a Decider.
type DeciderOption func(*Decider)

// WithCache sets the verification cache (default NewCache()).
func WithCache(c *Cache) DeciderOption { return func(d *Decider) { d.cache = c } }

// WithKeychain sets where registry credentials come from (default: the
// Docker config of the process, authn.DefaultKeychain).
func WithKeychain(f KeychainFunc) DeciderOption { return func(d *Decider) { d.keychain = f } }

// WithFallbackKeychain adds kc after the workload's credentials: asked for
// a registry they hold nothing for (the cloud's registry credentials,
// registryauth). Where kc fails, access is anonymous.
func WithFallbackKeychain(kc authn.Keychain) DeciderOption {
	return func(d *Decider) { d.fallback = kc }
}

// WithNamespaceLabels sets how namespace labels are looked up. Without it,
// a policy with a namespaceSelector sees no labels.
func WithNamespaceLabels(f NamespaceLabelsFunc) DeciderOption {
	return func(d *Decider) { d.nsLabels = f }
}

// NewDecider makes a Decider that verifies with v.
func NewDecider(v Verifier, opts ...DeciderOption) *Decider {
	d := &Decider{verifier: v}
	for _, o := range opts {
		o(d)
	}
	if d.cache == nil {
		d.cache = NewCache()
	}
	if d.concurrency < 1 {
		d.concurrency = DefaultConcurrency
	}
	d.metrics.watchCache(d.cache)
	if d.keychain == nil {
		d.keychain = func(context.Context, string, string, []string) (authn.Keychain, error) {
			return authn.DefaultKeychain, nil
		}
	}
	if d.fallback != nil {
		workload, fallback := d.keychain, registryauth.OrAnonymous(d.fallback)
		d.keychain = func(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (authn.Keychain, error) {
			kc, err := workload(ctx, namespace, serviceAccount, pullSecrets)
			if err != nil {
				return nil, err
			}
			return authn.NewMultiKeychain(kc, fallback), nil
		}
	}
	return d
}

// Request is what a decision is about.
type Request struct {
	// Kind is the workload kind (Pod, Deployment, …).
	Kind      string
	Namespace string
	Name      string
	// Operation is CREATE, UPDATE, …
	Operation string
	// Object and OldObject may share the memory of the AdmissionReview's
	// body, which the webhook reuses once Decide has returned: nothing may
	// keep them, or slices of them, past Decide.
	Object    []byte
	OldObject []byte
	// Fields, when set, are Object's fields already decoded (review.Decode
	// decodes them in the same pass as the AdmissionReview); when nil,
	// Decide decodes Object.
	Fields *workload.Fields
	// UserInfo is passed to ValidationPolicies as request.userInfo.
	UserInfo map[string]any
}

// Failure is one policy failing for one image or object.
type Failure struct {
	Mode   policies.Mode `json:"mode"`
	Policy string        `json:"policy"`
	// Image is empty for a ValidationPolicy failure.
	Image string `json:"image,omitempty"`
	// Authority names the authority that failed, when one did.
	Authority string `json:"authority,omitempty"`
	Reason    string `json:"reason"`
	// Bundle names the failing policy's bundle when several sources are
	// combined.
	Bundle string `json:"bundle,omitempty"`
}

func (f Failure) String() string {
	var b strings.Builder
	if f.Image != "" {
		fmt.Fprintf(&b, "image %s: ", f.Image)
	}
	if f.Policy != "" {
		fmt.Fprintf(&b, "policy %s", f.Policy)
		if f.Bundle != "" {
			fmt.Fprintf(&b, " (%s)", f.Bundle)
		}
		if f.Authority != "" {
			fmt.Fprintf(&b, ", authority %s", f.Authority)
		}
		b.WriteString(": ")
	}
	b.WriteString(f.Reason)
	return b.String()
}

// ImageResult is the outcome for one image of the workload.
type ImageResult struct {
	Image string `json:"image"`
	// Digest is the verified or resolved digest ("sha256:…"), when known.
	Digest   string   `json:"digest,omitempty"`
	Policies []string `json:"policies,omitempty"`
	// Signers are the signers that satisfied the policies.
	Signers []string `json:"signers,omitempty"`
	// Notes are checks that failed but that the passing authorities'
	// levels only report (a Notation signature's expired certificate at
	// level permissive); they are admission warnings.
	Notes   []string `json:"notes,omitempty"`
	Allowed bool     `json:"allowed"`
	// Mode is the strictest mode of the policies that matched ("" when
	// none did).
	Mode policies.Mode `json:"mode,omitempty"`
	// ByDigest is true when the image was given by digest.
	ByDigest bool `json:"byDigest,omitempty"`
}

// Patch is a JSON patch operation pinning an image to its digest.
type Patch struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}

// Decision is the outcome of a request.
type Decision struct {
	Allowed bool `json:"allowed"`
	// Failures of enforce-mode policies (deny), warn-mode (warnings) and
	// audit-mode (logged only).
	Failures []Failure     `json:"failures,omitempty"`
	Images   []ImageResult `json:"images,omitempty"`
	Patches  []Patch       `json:"patches,omitempty"`
	// Bundles are the bundles the decision was made with.
	Bundles []Provenance `json:"bundles"`
	// Policies are the names of the policies that took part.
	Policies []string `json:"policies,omitempty"`
	// Exempt is true when the namespace is exempt.
	Exempt bool `json:"exempt,omitempty"`
	// modes are the modes of Policies (metrics).
	modes map[string]policies.Mode
}

// addPolicy records a policy that took part.
func (d *Decision) addPolicy(name string, mode policies.Mode) {
	if !slices.Contains(d.Policies, name) {
		d.Policies = append(d.Policies, name)
	}
	if d.modes == nil {
		d.modes = map[string]policies.Mode{}
	}
	d.modes[name] = mode
}

// Limits of what a decision says, so that a workload with thousands of
// images gets an answer the API server and a person can take.
const (
	// MaxListedFailures is how many failures a deny message lists, and how
	// many warnings a response carries; the rest are counted.
	MaxListedFailures = 10
	// MaxMessageBytes bounds a deny message.
	MaxMessageBytes = 4096
)

// Message is the deny message: the enforce-mode failures (at most
// MaxListedFailures, the rest counted), and the bundle version, in one
// line of at most MaxMessageBytes.
func (d *Decision) Message() string {
	var parts []string
	n := 0
	for _, f := range d.Failures {
		if f.Mode == policies.ModeEnforce {
			if n < MaxListedFailures {
				parts = append(parts, f.String())
			}
			n++
		}
	}
	if n == 0 {
		return ""
	}
	if n > MaxListedFailures {
		parts = append(parts, fmt.Sprintf("and %d more failures", n-MaxListedFailures))
	}
	return capBytes(fmt.Sprintf("ward denied the request (%s): %s", bundleLabels(d.Bundles), strings.Join(parts, "; ")), MaxMessageBytes)
}

// capBytes cuts s to at most n bytes on a rune boundary, marking the cut.
func capBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = " …(truncated)"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// Warnings are the warn-mode failures and the admitted images' notes, one
// per admission warning (at most MaxListedFailures, the rest counted in
// one more).
func (d *Decision) Warnings() []string {
	var out []string
	n := 0
	for _, f := range d.Failures {
		if f.Mode == policies.ModeWarn {
			if n < MaxListedFailures {
				out = append(out, capBytes("ward (warn): "+f.String(), 512))
			}
			n++
		}
	}
	for _, img := range d.Images {
		for _, note := range img.Notes {
			if n < MaxListedFailures {
				out = append(out, capBytes("ward (note): image "+img.Image+": "+note, 512))
			}
			n++
		}
	}
	if n > MaxListedFailures {
		out = append(out, fmt.Sprintf("ward (warn): and %d more warnings", n-MaxListedFailures))
	}
	return out
}

// Audits are the audit-mode failures.
func (d *Decision) Audits() []Failure {
	var out []Failure
	for _, f := range d.Failures {
		if f.Mode == policies.ModeAudit {
			out = append(out, f)
		}
	}
	return out
}

// Annotations are the provenance annotations of the decision.
func (d *Decision) Annotations() map[string]string {
	p := strings.Join(d.Policies, ",")
	switch {
	case d.Exempt:
		p = "exempt"
	case p == "":
		p = "none"
	}
	return annotations(d.Bundles, p)
}

func bundleLabels(bs []Provenance) string {
	if len(bs) == 0 {
		return "no policy source"
	}
	labels := make([]string, len(bs))
	for i, b := range bs {
		labels[i] = b.Label()
	}
	if len(bs) == 1 {
		return "bundle " + labels[0]
	}
	return "bundles " + strings.Join(labels, ", ")
}

// ErrBadRequest marks a request ward cannot decode: the webhook answers 400.
var ErrBadRequest = errors.New("bad request")

// Decide runs the whole decision for one request against one state.
func (d *Decider) Decide(ctx context.Context, st *State, req Request) (*Decision, error) {
	set := st.Set
	dec := &Decision{Allowed: true, Bundles: st.Bundles}
	if set.Exempt(req.Namespace) {
		dec.Exempt = true
		return dec, nil
	}
	var wl *workload.Workload
	var err error
	if req.Fields != nil {
		wl, err = req.Fields.Workload(req.Kind)
	} else {
		wl, err = workload.Extract(req.Kind, req.Object)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadRequest, err)
	}
	subj := policies.Subject{Namespace: req.Namespace, Kind: req.Kind, Resource: policies.ResourceOf(req.Kind), Labels: wl.Labels}
	subj.Group, subj.Version = groupVersion(wl.APIVersion, req.Kind)
	if set.UsesNamespaceSelectors() && d.nsLabels != nil && req.Namespace != "" {
		labels, err := d.nsLabels(ctx, req.Namespace)
		if err != nil {
			return nil, fmt.Errorf("failed to read the labels of namespace %s: %w", req.Namespace, err)
		}
		subj.NamespaceLabels = labels
	}
	r := &imageRequest{subj: subj, namespace: req.Namespace,
		keychain: sync.OnceValues(func() (authn.Keychain, error) {
			return d.keychain(ctx, req.Namespace, wl.ServiceAccount, wl.PullSecrets)
		}),
		object: sync.OnceValue(func() map[string]json.RawMessage {
			var top map[string]json.RawMessage
			_ = json.Unmarshal(req.Object, &top) // decoded once already by workload.Extract
			return top
		}),
	}
	pinned := map[string]string{}
	outcomes := d.images(ctx, st, r, wl.Images())
	dec.Images = make([]ImageResult, 0, len(outcomes))
	for _, o := range outcomes {
		dec.Images = append(dec.Images, o.res)
		dec.Failures = append(dec.Failures, o.failures...)
		for i, p := range o.res.Policies {
			dec.addPolicy(p, o.modes[i])
		}
		if o.pin != "" {
			pinned[o.res.Image] = o.pin
		}
	}
	for _, c := range wl.Containers {
		if pin, ok := pinned[c.Image]; ok && pin != c.Image {
			dec.Patches = append(dec.Patches, Patch{Op: "replace", Path: c.Path, Value: pin})
		}
	}
	if err := d.validations(ctx, st, subj, req, dec); err != nil {
		return nil, err
	}
	for _, f := range dec.Failures {
		if f.Mode == policies.ModeEnforce {
			dec.Allowed = false
		}
	}
	return dec, nil
}

// groupVersion splits an object's apiVersion; an object that does not
// say gets its kind's group at v1.
func groupVersion(apiVersion, kind string) (string, string) {
	if apiVersion == "" {
		switch kind {
		case "Pod", "ReplicationController":
			return "", "v1"
		case "Job", "CronJob":
			return "batch", "v1"
		default:
			return "apps", "v1"
		}
	}
	if g, v, ok := strings.Cut(apiVersion, "/"); ok {
		return g, v
	}
	return "", apiVersion
}

// imageRequest is what deciding each image of a request shares.
type imageRequest struct {
	subj      policies.Subject
	namespace string
	// keychain gives the workload's registry credentials (read once, if
	// needed).
	keychain func() (authn.Keychain, error)
	// object is the admitted object's top-level fields (decoded once, if a
	// ClusterImagePolicy's spec.policy includes them).
	object func() map[string]json.RawMessage
	// discovery lists each image's referrers once for all the
	// authorities verified with the workload's credentials, cosign's and
	// Notation's.
	discovery imageverify.Discovery
}

// imageOutcome is what deciding one image gives.
type imageOutcome struct {
	res      ImageResult
	failures []Failure
	// modes are the modes of res.Policies.
	modes []policies.Mode
	// pin is the digest-pinned reference of a verified image.
	pin string
}

// budget is the share of a decision's time left for verifying images: the
// rest is kept to answer with what is known by then.
func budget(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	left := time.Until(deadline)
	return context.WithDeadline(ctx, deadline.Add(-min(left/10, time.Second)))
}

// images decides each image, at most d.concurrency at once, in the time
// budget of ctx: an image whose turn has not come when the budget ends
// fails as not verified in time, so that the request is answered before
// the API server gives up on it. Outcomes are in the order of imgs.
func (d *Decider) images(ctx context.Context, st *State, r *imageRequest, imgs []string) []imageOutcome {
	ctx, cancel := budget(ctx)
	defer cancel()
	out := make([]imageOutcome, len(imgs))
	if len(imgs) == 1 { // the common Pod: no goroutine to start
		out[0] = d.imageSafely(ctx, st, r, imgs[0])
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(d.concurrency, len(imgs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(imgs) {
					return
				}
				if over(ctx) {
					out[i] = imageOutcome{res: ImageResult{Image: imgs[i]}, failures: []Failure{{Mode: policies.ModeEnforce, Image: imgs[i],
						Reason: "not verified: the decision ran out of time (the workload has too many images to verify in time)"}}}
					continue
				}
				out[i] = d.imageSafely(ctx, st, r, imgs[i])
			}
		}()
	}
	wg.Wait()
	return out
}

// imageSafely is image, with a panic (a bug) turned into an enforce-mode
// failure of the image: it denies the request instead of ending the
// process, which would leave the API server to its failure policy.
func (d *Decider) imageSafely(ctx context.Context, st *State, r *imageRequest, img string) (o imageOutcome) {
	defer func() {
		if p := recover(); p != nil {
			logr.FromContextOrDiscard(ctx).Error(fmt.Errorf("%v", p), "panic while deciding an image", "image", img, "stack", string(debug.Stack()))
			o = imageOutcome{res: ImageResult{Image: img}, failures: []Failure{{Mode: policies.ModeEnforce, Image: img,
				Reason: "not verified: ward failed with an internal error (see its log)"}}}
		}
	}()
	return d.image(ctx, st, r, img)
}

// over reports whether ctx has ended or its deadline has passed (the
// timer that ends it may fire a moment after the deadline: no new
// verification may start in that moment).
func over(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// image decides one image.
func (d *Decider) image(ctx context.Context, st *State, r *imageRequest, img string) imageOutcome {
	set := st.Set
	o := imageOutcome{res: ImageResult{Image: img}}
	res := &o.res
	fail := func(mode policies.Mode, policy, authority, reason string) {
		o.failures = append(o.failures, Failure{Mode: mode, Policy: policy, Image: img, Authority: authority, Reason: reason})
	}
	parsed, err := d.refs.parse(img)
	if err != nil {
		fail(policies.ModeEnforce, "", "", fmt.Sprintf("invalid image reference: %s", oneLine(err)))
		return o
	}
	ref := parsed.ref
	_, res.ByDigest = ref.(name.Digest)
	repo := parsed.image.Repository
	matched := set.MatchImage(parsed.image, r.subj)
	if len(matched) == 0 {
		s := set.Settings()
		if s.AllowUnmatched {
			res.Allowed = true
			return o
		}
		fail(s.UnmatchedMode, "", "", fmt.Sprintf("no ImagePolicy matches %s and the bundle denies unmatched images", repo))
		return o
	}
	strictest := policies.ModeAudit
	for _, p := range matched {
		res.Policies = append(res.Policies, p.Name)
		o.modes = append(o.modes, p.Mode)
		if p.Mode.Stricter(strictest) {
			strictest = p.Mode
		}
	}
	res.Mode = strictest
	kc, err := r.keychain()
	if err != nil {
		fail(strictest, strings.Join(res.Policies, ","), "", fmt.Sprintf("failed to get registry credentials: %s", oneLine(err)))
		return o
	}
	digest, err := d.resolve(ctx, ref, kc)
	if err != nil {
		fail(strictest, strings.Join(res.Policies, ","), "", oneLine(err))
		return o
	}
	res.Digest = digest.DigestStr()
	allOK := true
	for _, p := range matched {
		signers, notes, authority, reason := d.policy(ctx, p, digest, kc, r)
		if reason != "" {
			allOK = false
			fail(p.Mode, p.Name, authority, reason)
			o.failures[len(o.failures)-1].Bundle = st.originLabel(p.Origin)
			continue
		}
		for _, s := range signers {
			if !slices.Contains(res.Signers, s.Name) {
				res.Signers = append(res.Signers, s.Name)
			}
		}
		for _, n := range notes {
			if !slices.Contains(res.Notes, n) {
				res.Notes = append(res.Notes, n)
			}
		}
	}
	res.Allowed = allOK
	if allOK {
		o.pin = digest.String()
	}
	return o
}

func (d *Decider) resolve(ctx context.Context, ref name.Reference, kc authn.Keychain) (name.Digest, error) {
	if dg, ok := ref.(name.Digest); ok {
		return dg, nil
	}
	key := ref.Name()
	if dg, ok := d.cache.digest(key); ok {
		return ref.Context().Digest(dg), nil
	}
	dg, err := d.verifier.Resolve(ctx, ref, kc)
	if err != nil {
		d.metrics.observeRegistryError(ref.Context().RegistryStr(), err)
		return name.Digest{}, err
	}
	d.cache.storeDigest(key, dg.DigestStr())
	return dg, nil
}

// policy checks one ImagePolicy: at least Threshold distinct signers must
// each satisfy a different authority. It returns the signers and the
// notes of the authorities that passed (checks their level only reports),
// or the failing authority and why.
func (d *Decider) policy(ctx context.Context, p *policies.ImagePolicy, digest name.Digest, kc authn.Keychain, r *imageRequest) (signers []imageverify.Signer, notes []string, authority, reason string) {
	var reasons, names []string
	// signersOf[i] are the signers that satisfied authority i.
	signersOf := make([][]imageverify.Signer, 0, len(p.Authorities))
	// matches are what passed, by authority, for spec.policy (which sees
	// every authority: none is skipped).
	var matches map[string]authorityMatch
	if p.Check != nil {
		matches = map[string]authorityMatch{}
	}
	for _, a := range p.Authorities {
		if a.Notation != nil && a.Notation.Skip() {
			// Notation's level skip: no signature is read, like a static
			// pass (no registry, no cache).
			signersOf = append(signersOf, []imageverify.Signer{{Name: "notation level skip (" + a.Name + ")"}})
			if matches != nil {
				matches[a.Name] = authorityMatch{Static: true}
			}
			continue
		}
		if a.Static != "" {
			if a.Static == "pass" {
				signersOf = append(signersOf, []imageverify.Signer{{Name: "static pass (" + a.Name + ")"}})
				if matches != nil {
					matches[a.Name] = authorityMatch{Static: true}
				}
			} else {
				reason := a.Name + ": static fail"
				if a.StaticMessage != "" {
					reason += ": " + a.StaticMessage
				}
				reasons = append(reasons, reason)
				names = append(names, a.Name)
			}
			continue
		}
		ra, err := d.withSecret(ctx, a)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %s", a.Name, oneLine(err)))
			names = append(names, a.Name)
			continue
		}
		a := ra
		var missed atomic.Bool
		fp := a.Fingerprint
		pullSecrets := a.Source != nil && len(a.Source.PullSecrets) > 0
		if pullSecrets {
			// Read with this namespace's Secrets: another namespace's
			// credentials may see other signatures.
			fp += "\x00ns:" + r.namespace
		}
		res, err := d.cache.verify(ctx, digest.String(), fp, func(ctx context.Context) (*imageverify.Result, error) {
			missed.Store(true)
			kc := kc
			ctx = imageverify.WithDiscovery(ctx, &r.discovery)
			if pullSecrets {
				// policy-controller's signaturePullSecrets: these Secrets of
				// the workload's namespace, instead of its credentials.
				var err error
				if kc, err = d.keychain(ctx, r.namespace, NoServiceAccount, a.Source.PullSecrets); err != nil {
					return nil, fmt.Errorf("%w: failed to get the signature pull secrets: %s", imageverify.ErrUnavailable, oneLine(err))
				}
				// Other credentials may list other referrers.
				ctx = imageverify.WithDiscovery(ctx, &imageverify.Discovery{})
			}
			start := time.Now()
			res, err := d.verifier.Verify(ctx, digest, a, kc)
			d.metrics.observeVerify(digest.Context().RegistryStr(), time.Since(start), err)
			return res, err
		})
		d.metrics.observeCache(!missed.Load())
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s: %s", a.Name, oneLine(err)))
			names = append(names, a.Name)
			continue
		}
		signersOf = append(signersOf, res.Signers)
		notes = append(notes, res.Notes...)
		if matches != nil {
			matches[a.Name] = matchesOf(a, res)
			continue
		}
		if p.Threshold == 1 {
			break // any one authority suffices
		}
	}
	signers = distinctSigners(signersOf)
	if len(signers) >= p.Threshold {
		if p.Check != nil {
			if reason := d.check(ctx, p.Check, matches, digest, kc, r); reason != "" {
				return nil, nil, "", reason
			}
		}
		return signers, notes, "", ""
	}
	reason = strings.Join(reasons, "; ")
	if p.Threshold > 1 {
		reason = fmt.Sprintf("%d of %d required distinct signers verified", len(signers), p.Threshold)
		if len(reasons) > 0 {
			reason += ": " + strings.Join(reasons, "; ")
		}
	}
	if len(names) == 1 {
		// The authority is named in the failure itself.
		reason = strings.Replace(reason, names[0]+": ", "", 1)
		return nil, nil, names[0], reason
	}
	return nil, nil, strings.Join(names, ","), reason
}

// authorityMatch is what passed for one authority, as policy-controller's
// policy result gives it to spec.policy.
type authorityMatch struct {
	Signatures   []imageverify.Match            `json:"signatures,omitempty"`
	Attestations map[string][]imageverify.Match `json:"attestations,omitempty"`
	Static       bool                           `json:"static,omitempty"`
}

func matchesOf(a *policies.CompiledAuthority, res *imageverify.Result) authorityMatch {
	var m authorityMatch
	if len(a.Attestations) == 0 {
		for _, s := range res.Matches {
			s.Digest, s.PredicateType = "", ""
			m.Signatures = append(m.Signatures, s)
		}
		return m
	}
	m.Attestations = map[string][]imageverify.Match{}
	for _, at := range res.Matches {
		m.Attestations[at.Attestation] = append(m.Attestations[at.Attestation], at)
	}
	return m
}

// ConfigFetcher is a Verifier that reads images' config files, for a
// ClusterImagePolicy's spec.policy with fetchConfigFile.
type ConfigFetcher interface {
	ConfigFiles(ctx context.Context, img name.Digest, kc authn.Keychain) (map[string]json.RawMessage, error)
}

// configFingerprint keys an image's config files in the verification
// cache (they are a function of the digest alone).
const configFingerprint = "config-files"

// check evaluates a ClusterImagePolicy's spec.policy over the authorities'
// results, and says why it fails ("" when it passes).
func (d *Decider) check(ctx context.Context, c *policies.PolicyCheck, matches map[string]authorityMatch, digest name.Digest, kc authn.Keychain, r *imageRequest) string {
	doc := map[string]any{"authorityMatches": matches}
	if c.FetchConfigFile {
		cf, ok := d.verifier.(ConfigFetcher)
		if !ok {
			return "policy: fetchConfigFile: this verifier cannot read config files"
		}
		res, err := d.cache.verify(ctx, digest.String(), configFingerprint, func(ctx context.Context) (*imageverify.Result, error) {
			configs, err := cf.ConfigFiles(ctx, digest, kc)
			if err != nil {
				return nil, err
			}
			return &imageverify.Result{Configs: configs}, nil
		})
		if err != nil {
			return "policy: failed to read the image's config files: " + oneLine(err)
		}
		doc["config"] = res.Configs
	}
	if c.IncludeSpec || c.IncludeObjectMeta || c.IncludeTypeMeta {
		obj := r.object()
		if c.IncludeSpec {
			doc["spec"] = obj["spec"]
		}
		if c.IncludeObjectMeta {
			doc["metadata"] = obj["metadata"]
		}
		if c.IncludeTypeMeta {
			doc["typemeta"] = map[string]json.RawMessage{"apiVersion": obj["apiVersion"], "kind": obj["kind"]}
		}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return "policy: " + oneLine(err)
	}
	if err := c.Eval(ctx, raw); err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return "not verified: the decision ran out of time evaluating the policy"
		}
		return fmt.Sprintf("policy (%s): %s", c.Lang(), oneLine(err))
	}
	return ""
}

// signerID is what makes two signers one: the key, when one identifies
// them (one key signing in two formats is one signer), else the name.
type signerID struct{ key, name string }

func identity(s imageverify.Signer) signerID {
	if s.Key != "" {
		return signerID{key: s.Key}
	}
	return signerID{name: s.Name}
}

// distinctSigners pairs authorities with signers, each signer counted for
// at most one authority and each authority at most once (a maximum
// bipartite matching), and returns the matched signers. One signature that
// satisfies two authorities counts once, and so does one key that signs
// with both cosign and Notation (signerID).
func distinctSigners(signersOf [][]imageverify.Signer) []imageverify.Signer {
	if len(signersOf) == 1 { // one authority (a threshold of one): its first signer
		n := min(1, len(signersOf[0]))
		return signersOf[0][:n:n] // clipped: the signers are a cached result's
	}
	owner := map[signerID]int{} // signer's identity → authority it is matched to
	var try func(a int, seen map[signerID]bool) bool
	try = func(a int, seen map[signerID]bool) bool {
		for _, s := range signersOf[a] {
			id := identity(s)
			if seen[id] {
				continue
			}
			seen[id] = true
			if o, taken := owner[id]; !taken || try(o, seen) {
				owner[id] = a
				return true
			}
		}
		return false
	}
	for a := range signersOf {
		try(a, map[signerID]bool{})
	}
	out := make([]imageverify.Signer, 0, len(owner))
	for a := range signersOf {
		for _, s := range signersOf[a] {
			if o, ok := owner[identity(s)]; ok && o == a && !slices.Contains(out, s) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

func (d *Decider) validations(ctx context.Context, st *State, subj policies.Subject, req Request, dec *Decision) error {
	vps := st.Set.MatchValidation(subj)
	if len(vps) == 0 {
		return nil
	}
	var obj, old any
	if err := json.Unmarshal(req.Object, &obj); err != nil {
		return fmt.Errorf("%w: object: %s", ErrBadRequest, err)
	}
	if len(req.OldObject) > 0 {
		if err := json.Unmarshal(req.OldObject, &old); err != nil {
			return fmt.Errorf("%w: oldObject: %s", ErrBadRequest, err)
		}
	}
	request := map[string]any{
		"namespace": req.Namespace, "name": req.Name, "operation": req.Operation,
		"kind": map[string]any{"kind": req.Kind}, "userInfo": req.UserInfo,
	}
	vars := map[string]any{"object": obj, "oldObject": old, "request": request}
	for _, vp := range vps {
		dec.addPolicy(vp.Name, vp.Mode)
		for _, r := range vp.Rules {
			ok, err := r.Condition.Eval(ctx, vars)
			switch {
			case err != nil:
				dec.Failures = append(dec.Failures, Failure{Mode: vp.Mode, Policy: vp.Name, Reason: fmt.Sprintf("%s: %s", r.Message, oneLine(err)), Bundle: st.originLabel(vp.Origin)})
			case !ok:
				dec.Failures = append(dec.Failures, Failure{Mode: vp.Mode, Policy: vp.Name, Reason: r.Message, Bundle: st.originLabel(vp.Origin)})
			}
		}
	}
	return nil
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
