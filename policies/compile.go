package policies

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"ward.dev/ward/bundle"
	"ward.dev/ward/internal/plainyaml"
	"ward.dev/ward/policies/policyeval"
	"ward.dev/ward/policies/sigstoretuf"
)

// WorkloadKinds are the kinds whose images ward checks, in the order the
// webhook documents them.
var WorkloadKinds = []string{"Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController"}

// Option configures Compile.
type Option func(*compileOptions)

type compileOptions struct {
	costLimit uint64
	remotes   *sigstoretuf.Remotes
	ctx       context.Context
	parsed    *ParseCache
}

// WithParseCache reuses the ImagePolicy documents c holds from the last
// compile that used it, where the same bytes come again, and leaves in c
// those of this compile for the next. Give each source its own cache, used
// by one compile at a time.
func WithParseCache(c *ParseCache) Option { return func(o *compileOptions) { o.parsed = c } }

// ParseCache remembers the ImagePolicy documents one compile decoded, by
// their bytes: a new version of a bundle mostly repeats the documents of
// the last, and decoding YAML is most of compiling. A decoded document is
// never changed by compiling, so one can serve many compiles. The zero
// value is ready to use.
type ParseCache struct {
	mu   sync.Mutex
	docs map[string]*ImagePolicyDoc
}

// take returns the documents of the last compile and starts empty.
func (c *ParseCache) take() map[string]*ImagePolicyDoc {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	docs := c.docs
	c.docs = nil
	return docs
}

// keep stores this compile's documents for the next.
func (c *ParseCache) keep(docs map[string]*ImagePolicyDoc) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.docs = docs
}

// WithRemoteTrustRoots reads TrustRoots of kind "remote" (a TUF mirror)
// through r. Without it such a TrustRoot is refused: nothing here reads
// it.
func WithRemoteTrustRoots(ctx context.Context, r *sigstoretuf.Remotes) Option {
	return func(o *compileOptions) { o.ctx, o.remotes = ctx, r }
}

// WithCELCostLimit sets the runtime cost limit of each CEL expression
// (default DefaultCELCostLimit).
func WithCELCostLimit(n uint64) Option {
	return func(o *compileOptions) { o.costLimit = n }
}

// Compile parses, validates and compiles policy documents into a Set. Every
// problem found is reported in one *CompileError; nothing is returned
// unless all documents are valid.
func Compile(docs []bundle.Document, opts ...Option) (*Set, error) {
	o := compileOptions{costLimit: DefaultCELCostLimit}
	for _, opt := range opts {
		opt(&o)
	}
	envs, err := newCELEnvs(o.costLimit)
	if err != nil {
		return nil, err
	}
	c := &compiler{envs: envs, set: &Set{index: newPatternIndex(), settings: defaultSettings()}, remotes: o.remotes, ctx: o.ctx, pemKeys: map[string]pemKey{}}
	names := map[string]string{} // kind/name → file
	raws := c.split(docs)
	parsedDocs := parseAll(raws, o.parsed.take())
	if o.parsed != nil {
		kept := map[string]*ImagePolicyDoc{}
		for i, p := range parsedDocs {
			if doc, ok := p.doc.(*ImagePolicyDoc); ok && len(p.errs) == 0 {
				kept[string(raws[i].raw)] = doc
			}
		}
		o.parsed.keep(kept)
	}
	for _, p := range parsedDocs {
		c.document(p, names)
	}
	for _, f := range c.deferred {
		f()
	}
	if c.set.settings.RefuseClusterReferences {
		for _, r := range c.set.ClusterReferences() {
			c.errs = append(c.errs, &FieldError{File: r.File, Kind: r.Kind, Name: r.Policy, Field: r.Field,
				Detail: fmt.Sprintf("authority %s reads %s from the cluster, and Settings %q refuses cluster references", r.Authority, r.What, c.set.settings.Name)})
		}
	}
	if len(c.errs) > 0 {
		return nil, &CompileError{Errs: c.errs}
	}
	return c.set.seal(), nil
}

type compiler struct {
	envs         *celEnvs
	set          *Set
	errs         []*FieldError
	haveSettings bool
	// trustRoots are the bundle's TrustRoots by name; ClusterImagePolicies
	// are compiled after every document has been read (deferred), so that
	// they find TrustRoots wherever they stand.
	trustRoots map[string]*trustRoot
	deferred   []func()
	remotes    *sigstoretuf.Remotes
	ctx        context.Context
	// pemKeys are the public keys parsed so far, by PEM: policies that
	// trust the same key share one parsed key.
	pemKeys map[string]pemKey
}

// pemKey is a parsed public key and its ID.
type pemKey struct {
	key crypto.PublicKey
	id  string
}

// at makes error reports for one document.
type at struct {
	c          *compiler
	file       string
	doc        int
	kind, name string
	// firstLine is the file line the document starts on (0: unknown).
	firstLine int
}

func (a at) fail(field, format string, args ...any) {
	a.failAt(field, 0, format, args...)
}

// failAt records an error at line (1-based in the document; 0: unknown).
func (a at) failAt(field string, line int, format string, args ...any) {
	if line > 0 && a.firstLine > 0 {
		line += a.firstLine - 1
	} else {
		line = 0
	}
	a.c.errs = append(a.c.errs, &FieldError{File: a.file, Doc: a.doc, Line: line, Kind: a.kind, Name: a.name, Field: field, Detail: fmt.Sprintf(format, args...)})
}

// strict decodes raw into doc, refusing unknown fields; an unknown field
// is reported with its path and line. A document in plain YAML takes the
// fast path; any other, and any that fails there, the YAML parser's, which
// also words every error.
func strict[T any](a at, raw []byte, doc *T) bool {
	if decodePlain(raw, doc) {
		return true
	}
	err := yaml.UnmarshalStrict(raw, doc)
	if err == nil {
		return true
	}
	if strings.Contains(err.Error(), "unknown field") {
		if field, line, ok := unknownField(raw, reflect.TypeFor[T]()); ok {
			a.failAt(field, line, "unknown field")
			return false
		}
	}
	a.fail("", "%s", decodeErr(err))
	return false
}

// decodePlain decodes raw into doc when raw is in the plain subset of
// YAML that policies are written in (internal/plainyaml), as
// sigs.k8s.io/yaml does (its JSON decoded with encoding/json's semantics,
// unknown fields refused), without its YAML parser. The JSON is decoded by
// go-json-experiment with its options for those semantics, a fifth faster
// than encoding/json here. It reports false, leaving doc alone, for any
// other document and for any that JSON refuses, which can be one YAML's
// conversions accept (a number where a string belongs): the YAML parser
// then decides.
func decodePlain[T any](raw []byte, doc *T) bool {
	js, ok := plainyaml.ToJSON(nil, raw)
	if !ok {
		return false
	}
	var plain T
	if jsonv2.Unmarshal(js, &plain, jsonv1.DefaultOptionsV1(), jsonv2.RejectUnknownMembers(true)) != nil {
		return false
	}
	if checkPlain != nil {
		var full T
		err := yaml.UnmarshalStrict(raw, &full)
		checkPlain(raw, &plain, &full, err)
	}
	*doc = plain
	return true
}

// checkPlain, when tests set it, is given each document decodePlain
// decoded, and what the YAML parser makes of it.
var checkPlain func(raw []byte, plain, full any, fullErr error)

// split cuts each file into its YAML documents, in order, with the line
// each starts on; a file that is not YAML gets an error and ends there.
func (c *compiler) split(docs []bundle.Document) []rawDoc {
	var out []rawDoc
	for _, d := range docs {
		n := 0
		err := splitYAML(d.Data, func(raw []byte, firstLine int) {
			if isBlank(raw) {
				return
			}
			n++
			out = append(out, rawDoc{a: at{c: c, file: d.Path, doc: n, firstLine: firstLine}, raw: raw})
		})
		if err != nil { // reported in its place, after the documents before it
			out = append(out, rawDoc{a: at{c: c, file: d.Path, doc: n + 1}, notYAML: err})
		}
	}
	return out
}

// splitYAML calls doc with each document of data and the line it starts
// on, cutting where Kubernetes tools cut: at each line that starts with
// "---" and has nothing but spaces or a comment after it. Another line
// starting with "---" is an error, and the document it ends is not given.
func splitYAML(data []byte, doc func(raw []byte, firstLine int)) error {
	start, startLine, line := 0, 1, 1
	for off := 0; off < len(data); line++ {
		next := len(data)
		if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
			next = off + i + 1
		}
		if l := data[off:next]; bytes.HasPrefix(l, []byte("---")) {
			if rest := bytes.TrimSpace(l[3:]); len(rest) > 0 && rest[0] != '#' {
				return fmt.Errorf("invalid YAML document separator: %s", rest)
			}
			if off > start {
				doc(data[start:off], startLine)
			}
			start, startLine = next, line+1
		}
		off = next
	}
	if start < len(data) {
		doc(data[start:], startLine)
	}
	return nil
}

// rawDoc is one YAML document of a file, or where a file stops being
// YAML.
type rawDoc struct {
	a       at
	raw     []byte
	notYAML error
}

// decodeErr drops the layers of prefixes YAML-to-JSON decoding adds.
func decodeErr(err error) string {
	msg := oneLine(err.Error())
	for _, p := range []string{"error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

// isBlank reports whether a YAML document holds only comments and space.
func isBlank(raw []byte) bool {
	for line := range bytes.Lines(raw) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' && string(t) != "---" {
			return false
		}
	}
	return true
}

// document takes a parsed document into the set, in bundle order: its
// errors, the check that its name is unique, and its kind's compiling
// (ImagePolicies and ClusterImagePolicies once every document is read, so
// that a trustRootRef finds its TrustRoot wherever it stands).
func (c *compiler) document(p *parsed, names map[string]string) {
	a, h := p.a, p.h
	a.c = c
	if !p.named { // stopped at its header
		c.errs = append(c.errs, p.errs...)
		return
	}
	c.errs = append(c.errs, p.errs[:p.headErrs]...)
	key := h.Kind + "/" + h.Metadata.Name
	if prev, dup := names[key]; dup && h.Metadata.Name != "" {
		a.fail("metadata.name", "a %s of this name is also in %s", h.Kind, prev)
	}
	names[key] = a.file
	c.errs = append(c.errs, p.errs[p.headErrs:]...)
	switch doc := p.doc.(type) {
	case *ClusterImagePolicyDoc:
		c.deferred = append(c.deferred, func() { c.clusterImagePolicy(a, doc) })
	case *TrustRootDoc:
		c.trustRootDoc(a, doc)
	case *ImagePolicyDoc:
		c.deferred = append(c.deferred, func() { c.imagePolicy(a, doc) })
	case *ValidationPolicyDoc:
		c.validationPolicy(a, doc)
	case *SettingsDoc:
		c.settings(a, doc)
	}
}

// parsed is a document read on its own, apart from the others: its
// header, its typed document (nil when reading it failed) and its errors,
// of which the first headErrs are about its header. named is whether its
// header was good enough to check its name's uniqueness.
type parsed struct {
	a        at
	h        header
	doc      any
	errs     []*FieldError
	headErrs int
	named    bool
}

// parseAll parses the documents on every core: YAML decoding is most of
// compiling, and each document decodes alone. A document whose bytes are
// known (decoded by the last compile without an error) is not decoded
// again.
func parseAll(raws []rawDoc, known map[string]*ImagePolicyDoc) []*parsed {
	out := make([]*parsed, len(raws))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(raws)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < len(raws); i = int(next.Add(1) - 1) {
				if doc, ok := known[string(raws[i].raw)]; ok {
					p := &parsed{doc: doc}
					p.readHeader(raws[i].a, headerOf(doc))
					p.headErrs = len(p.errs)
					out[i] = p
					continue
				}
				out[i] = parseDocument(raws[i])
			}
		}()
	}
	wg.Wait()
	return out
}

// parseDocument reads a document's header and decodes it strictly into
// its kind's type. The YAML is parsed once when a quick look at the
// document's top-level lines finds its apiVersion and kind, and the
// decoded document confirms them; otherwise the header is parsed first.
func parseDocument(r rawDoc) *parsed {
	a, raw := r.a, r.raw
	if r.notYAML != nil {
		scratch := &compiler{}
		a.c = scratch
		a.fail("", "not YAML: %s", oneLine(r.notYAML.Error()))
		return &parsed{a: a, errs: scratch.errs}
	}
	if qh, ok := quickHeader(raw); ok {
		quick := a
		quick.c = &compiler{} // errors here are dropped: the slow path reports them
		if doc, ok := decodeKind(quick, qh.Kind, raw); ok {
			if h := headerOf(doc); h.APIVersion == qh.APIVersion && h.Kind == qh.Kind {
				p := &parsed{doc: doc}
				p.readHeader(a, h)
				if p.named {
					p.headErrs = len(p.errs)
					return p
				}
			}
		}
	}
	p := &parsed{}
	var h header
	scratch := &compiler{}
	a.c = scratch
	if err := yaml.Unmarshal(raw, &h); err != nil {
		a.fail("", "not a policy document: %s", oneLine(err.Error()))
		p.a, p.errs, p.headErrs = a, scratch.errs, len(scratch.errs)
		return p
	}
	if p.readHeader(a, h); !p.named {
		return p
	}
	p.headErrs = len(p.errs)
	a.kind, a.name = h.Kind, h.Metadata.Name
	scratch = &compiler{}
	a.c = scratch
	if doc, ok := decodeKind(a, h.Kind, raw); ok {
		p.doc = doc
	}
	p.errs = append(p.errs, scratch.errs...)
	return p
}

// readHeader checks a document's header: its apiVersion and kind, which
// stop the document when wrong (named stays false), and its name.
func (p *parsed) readHeader(a at, h header) {
	scratch := &compiler{}
	a.c = scratch
	a.kind, a.name = h.Kind, h.Metadata.Name
	p.a, p.h = a, h
	defer func() { p.errs = scratch.errs }()
	switch {
	case slices.Contains(sigstoreVersions, h.APIVersion):
		switch h.Kind {
		case KindClusterImagePolicy:
		case KindTrustRoot:
			if h.APIVersion != SigstoreGroup+"/v1alpha1" {
				a.fail("apiVersion", "is %q; a TrustRoot is %s/v1alpha1", h.APIVersion, SigstoreGroup)
				return
			}
		default:
			a.fail("kind", "is %q; of %s ward reads %s and %s", h.Kind, SigstoreGroup, KindClusterImagePolicy, KindTrustRoot)
			return
		}
	case h.APIVersion != APIVersion:
		a.fail("apiVersion", "is %q, want %q (or %s for a ClusterImagePolicy)", h.APIVersion, APIVersion, strings.Join(sigstoreVersions, " or "))
		return
	case h.Kind == KindClusterImagePolicy:
		a.fail("apiVersion", "is %q; a ClusterImagePolicy is %s", h.APIVersion, strings.Join(sigstoreVersions, " or "))
		return
	}
	if h.Metadata.Name == "" {
		a.fail("metadata.name", "is required")
	} else if msgs := validation.IsDNS1123Subdomain(h.Metadata.Name); len(msgs) > 0 {
		a.fail("metadata.name", "%s", msgs[0])
	}
	p.named = true
}

// decodeKind decodes raw strictly into kind's document type; an unknown
// kind is an error.
func decodeKind(a at, kind string, raw []byte) (any, bool) {
	switch kind {
	case KindClusterImagePolicy:
		return decodeAs[ClusterImagePolicyDoc](a, raw)
	case KindTrustRoot:
		return decodeAs[TrustRootDoc](a, raw)
	case KindImagePolicy:
		return decodeAs[ImagePolicyDoc](a, raw)
	case KindValidationPolicy:
		return decodeAs[ValidationPolicyDoc](a, raw)
	case KindSettings:
		return decodeAs[SettingsDoc](a, raw)
	}
	a.fail("kind", "is %q, want %s, %s or %s", kind, KindImagePolicy, KindValidationPolicy, KindSettings)
	return nil, false
}

func decodeAs[T any](a at, raw []byte) (any, bool) {
	var doc T
	if !strict(a, raw, &doc) {
		return nil, false
	}
	return &doc, true
}

// headerOf is a decoded document's header.
func headerOf(doc any) header {
	switch d := doc.(type) {
	case *ClusterImagePolicyDoc:
		return header{d.APIVersion, d.Kind, d.Metadata}
	case *TrustRootDoc:
		return header{d.APIVersion, d.Kind, d.Metadata}
	case *ImagePolicyDoc:
		return header{d.APIVersion, d.Kind, d.Metadata}
	case *ValidationPolicyDoc:
		return header{d.APIVersion, d.Kind, d.Metadata}
	case *SettingsDoc:
		return header{d.APIVersion, d.Kind, d.Metadata}
	}
	return header{}
}

// quickHeader finds a document's apiVersion and kind on top-level lines
// of the form "key: value" (a plain or quoted scalar, maybe a comment
// after it), without parsing the YAML: only a guess at the type to decode
// into, which the decoded document must confirm.
func quickHeader(raw []byte) (header, bool) {
	var h header
	for line := range bytes.Lines(raw) {
		key, value, ok := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(":"))
		if !ok {
			continue
		}
		var field *string
		switch string(key) {
		case "apiVersion":
			field = &h.APIVersion
		case "kind":
			field = &h.Kind
		default:
			continue
		}
		if *field != "" {
			return h, false // twice: let the YAML parser say
		}
		v := bytes.TrimSpace(value)
		if i := bytes.Index(v, []byte(" #")); i >= 0 {
			v = bytes.TrimSpace(v[:i])
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		*field = string(v)
	}
	return h, h.APIVersion != "" && h.Kind != ""
}

func checkMode(a at, field string, m Mode) Mode {
	switch m {
	case "":
		return ModeEnforce
	case ModeEnforce, ModeWarn, ModeAudit:
		return m
	}
	a.fail(field, "is %q, want enforce, warn or audit", m)
	return ModeEnforce
}

func (c *compiler) match(a at, m *Match) matcher {
	var out matcher
	if m == nil {
		return out
	}
	for i, ns := range m.Namespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			a.fail(fmt.Sprintf("spec.match.namespaces[%d]", i), "%s", msgs[0])
		}
	}
	out.namespaces = m.Namespaces
	for i, k := range m.Kinds {
		if !slices.Contains(WorkloadKinds, k) {
			a.fail(fmt.Sprintf("spec.match.kinds[%d]", i), "is %q, want one of %s", k, strings.Join(WorkloadKinds, ", "))
		}
	}
	out.kinds = m.Kinds
	if m.NamespaceSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(m.NamespaceSelector)
		if err != nil {
			a.fail("spec.match.namespaceSelector", "%s", oneLine(err.Error()))
		} else {
			out.selector = sel
		}
	}
	return out
}

func (c *compiler) imagePolicy(a at, doc *ImagePolicyDoc) {
	s := &doc.Spec
	p := &ImagePolicy{Name: doc.Metadata.Name, Kind: KindImagePolicy, File: a.file, Mode: checkMode(a, "spec.mode", s.Mode), match: c.match(a, s.Match)}
	if len(s.Images) == 0 {
		a.fail("spec.images", "at least one glob is required")
	}
	for i, img := range s.Images {
		g, err := normalizeGlob(img.Glob)
		if err != nil {
			a.fail(fmt.Sprintf("spec.images[%d].glob", i), "%s", err)
			continue
		}
		p.Globs = append(p.Globs, g)
	}
	if len(s.Authorities) == 0 {
		a.fail("spec.authorities", "at least one authority is required")
	}
	p.Authorities = named(a, len(s.Authorities), func(field string, i int) *CompiledAuthority {
		return c.authority(a, field, s.Authorities[i])
	})
	p.Threshold = 1
	if s.Threshold < 0 || s.Threshold > len(s.Authorities) {
		a.fail("spec.threshold", "is %d, want 1 to %d (the number of authorities)", s.Threshold, len(s.Authorities))
	} else if s.Threshold > 1 {
		p.Threshold = s.Threshold
		// Distinct signers: two authorities with the same key or identity
		// would let one signer count twice (the decision also counts
		// distinct verified signers); a static pass is no signer.
		fps := map[string]string{}
		for _, au := range p.Authorities {
			if au.Static != "" {
				a.fail("spec.threshold", "authority %q is static; a threshold counts signers, so static authorities cannot take part", au.Name)
			}
			if au.Notation != nil && !au.Notation.CountsSigners() {
				a.fail("spec.threshold", "authority %q is notation at level %s, which does not authenticate signers; a threshold counts trusted signers", au.Name, au.Notation.Level)
			}
			if other, dup := fps[au.signerID]; dup && au.signerID != "" {
				a.fail("spec.threshold", "authorities %q and %q are the same signer; a threshold counts distinct signers", other, au.Name)
			}
			fps[au.signerID] = au.Name
		}
	}
	c.set.index.addPolicy(p, len(c.set.images))
	c.set.images = append(c.set.images, p)
}

// named compiles n authorities (compile returns nil for one that failed),
// names the unnamed "authority-<i>" as policy-controller does, and refuses
// two of one name.
func named(a at, n int, compile func(field string, i int) *CompiledAuthority) []*CompiledAuthority {
	var out []*CompiledAuthority
	seen := map[string]int{}
	for i := range n {
		field := fmt.Sprintf("spec.authorities[%d]", i)
		ca := compile(field, i)
		if ca == nil {
			continue
		}
		if ca.Name == "" {
			ca.Name = fmt.Sprintf("authority-%d", i)
		}
		if j, dup := seen[ca.Name]; dup {
			a.fail(field+".name", "%q is also the name of authorities[%d]", ca.Name, j)
		}
		seen[ca.Name] = i
		out = append(out, ca)
	}
	return out
}

func (c *compiler) authority(a at, field string, au Authority) *CompiledAuthority {
	out := &CompiledAuthority{Name: au.Name}
	if kl := au.Keyless; kl != nil && kl.TrustRootRef != "" {
		if kl.CACert != nil {
			a.fail(field+".keyless", "give ca-cert or trustRootRef, not both")
			return nil
		}
		tr := c.trustRootRef(a, field+".keyless.trustRootRef", kl.TrustRootRef)
		if tr == nil {
			return nil
		}
		k := *kl
		k.CACert = &KeyRef{Data: tr.caPEM}
		if len(k.SCTPublicKeys) == 0 {
			k.SCTPublicKeys = tr.ctlogs
		}
		au.Keyless = &k
	}
	if tl := au.CTLog; tl != nil && tl.TrustRootRef != "" {
		if len(tl.PublicKeys) > 0 {
			a.fail(field+".ctlog", "give publicKeys or trustRootRef, not both")
			return nil
		}
		tr := c.trustRootRef(a, field+".ctlog.trustRootRef", tl.TrustRootRef)
		if tr == nil {
			return nil
		}
		au.CTLog = &TLog{URL: tl.URL, PublicKeys: tr.tlogs}
	}
	n := 0
	for _, set := range []bool{au.Key != nil, au.Keyless != nil, au.Notation != nil, au.Static != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		a.fail(field, "exactly one of key, keyless, notation and static is required")
		return nil
	}
	h := sha256.New()
	switch {
	case au.Key != nil:
		k := c.key(a, field+".key", au.Key)
		if k == nil {
			return nil
		}
		out.Key = k
		out.signerID = "key:" + k.id
		fmt.Fprintf(h, "key\x00%s\x00%d\x00", k.id, k.Hash)
	case au.Keyless != nil:
		kl := c.keyless(a, field+".keyless", au.Keyless)
		if kl == nil {
			return nil
		}
		out.Keyless = kl
		out.signerID = "keyless:" + kl.id
		fmt.Fprintf(h, "keyless\x00%s\x00", kl.id)
		if au.CTLog == nil && au.RFC3161Timestamp == nil {
			a.fail(field+".ctlog", "is required for keyless (or rfc3161timestamp): a Fulcio certificate is valid for minutes, so the signing time must come from the transparency log or a timestamp authority")
		}
	case au.Notation != nil:
		nt := c.notation(a, field+".notation", au.Notation)
		if nt == nil {
			return nil
		}
		out.Notation = nt
		if nt.CountsSigners() {
			out.signerID = "notation:" + nt.id
		}
		fmt.Fprintf(h, "notation\x00%s\x00", nt.id)
		switch {
		case au.CTLog != nil || au.RFC3161Timestamp != nil:
			a.fail(field, "a notation authority takes no ctlog or rfc3161timestamp: its timestamp authorities are trustStore.tsa")
		case len(au.Attestations) > 0:
			a.fail(field+".attestations", "are cosign's: a notation authority verifies signatures only")
		case au.Source != nil && (au.Source.OCI != "" || au.Source.TagPrefix != ""):
			a.fail(field+".source", "Notation signatures are read as referrers of the image itself: only signaturePullSecrets apply")
		}
	case au.Static != nil:
		switch au.Static.Action {
		case "pass", "fail":
			out.Static, out.StaticMessage = au.Static.Action, au.Static.Message
		default:
			a.fail(field+".static.action", "is %q, want pass or fail", au.Static.Action)
		}
		fmt.Fprintf(h, "static\x00%s\x00", au.Static.Action)
		if au.CTLog != nil || len(au.Attestations) > 0 {
			a.fail(field, "a static authority takes no ctlog or attestations")
		}
	}
	if au.RFC3161Timestamp != nil {
		if au.Static != nil {
			a.fail(field+".rfc3161timestamp", "a static authority reads no signatures")
		}
		out.TSA = tsa(a, field+".rfc3161timestamp.certChain", au.RFC3161Timestamp.CertChain)
		if out.TSA != nil {
			for _, c := range append(append(slices.Clone(out.TSA.Leaves), out.TSA.Intermediates...), out.TSA.Roots...) {
				fmt.Fprintf(h, "tsa\x00%x\x00", sha256.Sum256(c.Raw))
			}
		}
	}
	if au.Source != nil {
		if au.Static != nil {
			a.fail(field+".source", "a static authority reads no signatures")
		}
		out.Source = c.source(a, field+".source", au.Source)
		if out.Source != nil {
			fmt.Fprintf(h, "source\x00%s\x00%s\x00", out.Source.Repository, out.Source.TagPrefix)
		}
	}
	if au.CTLog != nil {
		if len(au.CTLog.PublicKeys) == 0 {
			a.fail(field+".ctlog.publicKeys", "at least one Rekor public key is required (verification is offline)")
		}
		for i, pemKey := range au.CTLog.PublicKeys {
			pk, err := cryptoutils.UnmarshalPEMToPublicKey([]byte(pemKey))
			if err != nil {
				a.fail(fmt.Sprintf("%s.ctlog.publicKeys[%d]", field, i), "not a PEM public key")
				continue
			}
			out.TLogKeys = append(out.TLogKeys, pk)
			fmt.Fprintf(h, "tlog\x00%s\x00", keyID(pk))
		}
	}
	for i, at := range au.Attestations {
		f := fmt.Sprintf("%s.attestations[%d]", field, i)
		ca := CompiledAttestation{Name: at.Name, PredicateType: PredicateTypeURI(at.PredicateType)}
		if at.Name == "" {
			a.fail(f+".name", "is required")
		}
		if at.PredicateType == "" {
			a.fail(f+".predicateType", "is required")
		}
		if at.Policy != nil {
			switch at.Policy.Type {
			case "cel":
				if cond, err := c.envs.compile(c.envs.attestation, at.Policy.Data); err != nil {
					a.fail(f+".policy.data", "%s", err)
				} else {
					ca.Condition = cond
				}
			case policyeval.CUE, policyeval.Rego:
				if prog, err := policyeval.Compile(at.Policy.Type, at.Policy.Data); err != nil {
					a.fail(f+".policy.data", "%s", err)
				} else {
					ca.Policy = prog
				}
			default:
				a.fail(f+".policy.type", "is %q, want cel, cue or rego", at.Policy.Type)
			}
		}
		// The name is part of it: results name the attestation they passed.
		fmt.Fprintf(h, "att\x00%s\x00%s\x00%s\x00%s\x00", ca.Name, ca.PredicateType, at.policyType(), ca.source())
		out.Attestations = append(out.Attestations, ca)
	}
	out.Fingerprint = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return out
}

func (a Attestation) policyType() string {
	if a.Policy == nil {
		return ""
	}
	return a.Policy.Type
}

// source is the text of the attestation's condition or policy.
func (a CompiledAttestation) source() string {
	switch {
	case a.Condition != nil:
		return a.Condition.expr
	case a.Policy != nil:
		return a.Policy.Source()
	}
	return ""
}

// source checks where an authority's signatures are kept.
func (c *compiler) source(a at, field string, s *SignatureSource) *CompiledSource {
	out := &CompiledSource{TagPrefix: s.TagPrefix}
	if s.OCI != "" {
		repo, err := name.NewRepository(s.OCI)
		if err != nil {
			a.fail(field+".oci", "is not a repository: %s", oneLine(err.Error()))
			return nil
		}
		out.Repository = repo.Name()
	}
	if strings.ContainsAny(s.TagPrefix, "/:@ ") {
		a.fail(field+".tagPrefix", "%q cannot begin a tag", s.TagPrefix)
	}
	for i, ps := range s.SignaturePullSecrets {
		if msgs := validation.IsDNS1123Subdomain(ps.Name); len(msgs) > 0 {
			a.fail(fmt.Sprintf("%s.signaturePullSecrets[%d].name", field, i), "%s", msgs[0])
			continue
		}
		out.PullSecrets = append(out.PullSecrets, ps.Name)
	}
	if out.Repository == "" && out.TagPrefix == "" && len(out.PullSecrets) == 0 {
		return nil
	}
	return out
}

func keyID(pk crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pk)
	if err != nil {
		return fmt.Sprintf("%T", pk)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func (c *compiler) key(a at, field string, k *KeyRef) *PublicKey {
	out := &PublicKey{Hash: crypto.SHA256}
	switch k.HashAlgorithm {
	case "", "sha256":
	case "sha384":
		out.Hash = crypto.SHA384
	case "sha512":
		out.Hash = crypto.SHA512
	default:
		a.fail(field+".hashAlgorithm", "is %q, want sha256, sha384 or sha512", k.HashAlgorithm)
	}
	n := 0
	for _, set := range []bool{k.Data != "", k.KMS != "", k.SecretRef != nil} {
		if set {
			n++
		}
	}
	switch {
	case n > 1:
		a.fail(field, "data, kms and secretRef are exclusive")
		return nil
	case k.SecretRef != nil:
		if !secretName(a, field+".secretRef.name", k.SecretRef.Name) {
			return nil
		}
		out.SecretRef = k.SecretRef.Name
		out.id = "secret:" + k.SecretRef.Name
	case k.Data != "":
		pk, ok := c.pemKeys[k.Data]
		if !ok {
			key, err := cryptoutils.UnmarshalPEMToPublicKey([]byte(k.Data))
			if err != nil {
				a.fail(field+".data", "not a PEM public key")
				return nil
			}
			pk = pemKey{key: key, id: keyID(key)}
			c.pemKeys[k.Data] = pk
		}
		out.Public, out.id = pk.key, pk.id
	case k.KMS != "":
		if !strings.Contains(k.KMS, "://") {
			a.fail(field+".kms", "is %q, want a KMS URI such as awskms:///alias/name", k.KMS)
			return nil
		}
		out.KMS = k.KMS
		out.id = "kms:" + k.KMS
	default:
		a.fail(field, "data, kms or secretRef is required")
		return nil
	}
	return out
}

// secretName checks the name of a referenced Secret.
func secretName(a at, field, name string) bool {
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		a.fail(field, "%s", msgs[0])
		return false
	}
	return true
}

// tsa sorts the PEM certificates of timestamp authorities into roots
// (self-signed CAs), leaves (not CAs: the timestamping certificates) and
// intermediates.
func tsa(a at, field, pemData string) *TSA {
	roots, rest, err := caChain([]byte(pemData))
	if err != nil {
		a.fail(field, "%s", err)
		return nil
	}
	out := &TSA{Roots: roots}
	for _, c := range rest {
		if c.IsCA {
			out.Intermediates = append(out.Intermediates, c)
		} else {
			out.Leaves = append(out.Leaves, c)
		}
	}
	return out
}

// caChain splits PEM certificates into self-signed roots and
// intermediates; there must be a root.
func caChain(data []byte) (roots, inter []*x509.Certificate, err error) {
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(data)
	if err != nil || len(certs) == 0 {
		return nil, nil, errors.New("no PEM certificates")
	}
	for _, cert := range certs {
		if cert.IsCA && bytes.Equal(cert.RawIssuer, cert.RawSubject) {
			roots = append(roots, cert)
		} else {
			inter = append(inter, cert)
		}
	}
	if len(roots) == 0 {
		return nil, nil, fmt.Errorf("no self-signed root certificate among the %d certificates", len(certs))
	}
	return roots, inter, nil
}

func (c *compiler) keyless(a at, field string, k *KeylessRef) *Keyless {
	out := &Keyless{IgnoreSCTUnsafe: k.IgnoreSCTUnsafe}
	h := sha256.New()
	switch {
	case k.CACert != nil && k.CACert.SecretRef != nil:
		if k.CACert.Data != "" || k.CACert.KMS != "" {
			a.fail(field+".ca-cert", "data and secretRef are exclusive")
		}
		if secretName(a, field+".ca-cert.secretRef.name", k.CACert.SecretRef.Name) {
			out.CASecretRef = k.CACert.SecretRef.Name
			fmt.Fprintf(h, "secret\x00%s\x00", out.CASecretRef)
		}
	case k.CACert == nil || k.CACert.Data == "":
		a.fail(field+".ca-cert.data", "the PEM certificates of the Fulcio root (and intermediates) are required")
	default:
		roots, inter, err := caChain([]byte(k.CACert.Data))
		if err != nil {
			a.fail(field+".ca-cert.data", "%s", err)
		}
		out.Roots, out.Intermediates = roots, inter
		for _, cert := range append(slices.Clone(roots), inter...) {
			sum := sha256.Sum256(cert.Raw)
			fmt.Fprintf(h, "cert\x00%x\x00", sum)
		}
	}
	if len(k.Identities) == 0 {
		a.fail(field+".identities", "at least one identity is required")
	}
	for i, id := range k.Identities {
		f := fmt.Sprintf("%s.identities[%d]", field, i)
		ci := CompiledIdentity{Issuer: id.Issuer, Subject: id.Subject}
		if (id.Issuer == "") == (id.IssuerRegExp == "") {
			a.fail(f, "exactly one of issuer and issuerRegExp is required")
		}
		if (id.Subject == "") == (id.SubjectRegExp == "") {
			a.fail(f, "exactly one of subject and subjectRegExp is required")
		}
		var err error
		// Regexps must match the whole value: an unanchored
		// "github.com/org/" would match a subject that merely contains it.
		if id.IssuerRegExp != "" {
			if ci.IssuerRegExp, err = regexp.Compile(anchored(id.IssuerRegExp)); err != nil {
				a.fail(f+".issuerRegExp", "%s", err)
			}
		}
		if id.SubjectRegExp != "" {
			if ci.SubjectRegExp, err = regexp.Compile(anchored(id.SubjectRegExp)); err != nil {
				a.fail(f+".subjectRegExp", "%s", err)
			}
		}
		fmt.Fprintf(h, "id\x00%s\x00%s\x00%s\x00%s\x00", id.Issuer, id.IssuerRegExp, id.Subject, id.SubjectRegExp)
		out.Identities = append(out.Identities, ci)
	}
	if len(k.SCTPublicKeys) == 0 && !k.IgnoreSCTUnsafe {
		a.fail(field+".sctPublicKeys", "the certificate transparency log keys are required (or set ignoreSCTUnsafe: true)")
	}
	for i, pemKey := range k.SCTPublicKeys {
		pk, err := cryptoutils.UnmarshalPEMToPublicKey([]byte(pemKey))
		if err != nil {
			a.fail(fmt.Sprintf("%s.sctPublicKeys[%d]", field, i), "not a PEM public key")
			continue
		}
		out.SCTKeys = append(out.SCTKeys, pk)
		fmt.Fprintf(h, "sct\x00%s\x00", keyID(pk))
	}
	fmt.Fprintf(h, "ignoresct\x00%t", k.IgnoreSCTUnsafe)
	out.id = hex.EncodeToString(h.Sum(nil))
	return out
}

// anchored makes a regexp match whole strings only.
func anchored(re string) string { return "^(?:" + re + ")$" }

func (c *compiler) validationPolicy(a at, doc *ValidationPolicyDoc) {
	s := &doc.Spec
	p := &ValidationPolicy{Name: doc.Metadata.Name, File: a.file, Mode: checkMode(a, "spec.mode", s.Mode), match: c.match(a, s.Match)}
	if len(s.Validations) == 0 {
		a.fail("spec.validations", "at least one validation is required")
	}
	for i, v := range s.Validations {
		cond, err := c.envs.compile(c.envs.validation, v.Expression)
		if err != nil {
			a.fail(fmt.Sprintf("spec.validations[%d].expression", i), "%s", err)
			continue
		}
		msg := v.Message
		if msg == "" {
			msg = "failed rule: " + v.Expression
		}
		p.Rules = append(p.Rules, Rule{Condition: cond, Message: msg})
	}
	c.set.validations = append(c.set.validations, p)
}

func (c *compiler) settings(a at, doc *SettingsDoc) {
	if c.haveSettings {
		a.fail("", "a bundle holds at most one Settings document")
		return
	}
	c.haveSettings = true
	s := defaultSettings()
	switch doc.Spec.UnmatchedImages {
	case "", "deny":
	case "allow":
		s.AllowUnmatched = true
	default:
		a.fail("spec.unmatchedImages", "is %q, want deny or allow", doc.Spec.UnmatchedImages)
	}
	s.UnmatchedMode = checkMode(a, "spec.unmatchedMode", doc.Spec.UnmatchedMode)
	for i, ns := range doc.Spec.ExemptNamespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			a.fail(fmt.Sprintf("spec.exemptNamespaces[%d]", i), "%s", msgs[0])
		}
	}
	s.ExemptNamespaces = doc.Spec.ExemptNamespaces
	switch doc.Spec.ClusterReferences {
	case "", "allow":
	case "refuse":
		s.RefuseClusterReferences = true
	default:
		a.fail("spec.clusterReferences", "is %q, want allow or refuse", doc.Spec.ClusterReferences)
	}
	s.Name = doc.Metadata.Name
	c.set.settings = s
}

// matcher is a compiled Match (ImagePolicy, ValidationPolicy) or match
// list (ClusterImagePolicy).
type matcher struct {
	namespaces []string
	kinds      []string
	selector   labels.Selector
	// byResource: a ClusterImagePolicy match list; one of resources must
	// select the object.
	byResource bool
	resources  []resourceMatch
}

// resourceMatch is one entry of a ClusterImagePolicy's match list.
type resourceMatch struct {
	group, version, resource string
	selector                 labels.Selector
}

func (r resourceMatch) matches(s Subject) bool {
	return r.resource == s.Resource && (r.version == s.Version || r.version == "*") && r.group == s.Group &&
		(r.selector == nil || r.selector.Matches(labels.Set(s.Labels)))
}
