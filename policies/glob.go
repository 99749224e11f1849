package policies

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// DefaultRegistry is where images without a registry host live.
const DefaultRegistry = "index.docker.io"

// Repository returns the normalised repository of an image reference, as
// globs are matched against it: "nginx:1.27" is
// "index.docker.io/library/nginx", "docker.io/x/y@sha256:…" is
// "index.docker.io/x/y".
func Repository(image string) (string, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", image, err)
	}
	return RepositoryOf(ref), nil
}

// dockerHubHosts are the names of Docker Hub's registry.
var dockerHubHosts = []string{"index.docker.io", "docker.io", "registry-1.docker.io"}

// normalizeHost folds the spellings of one registry into one: lower case,
// no default HTTPS port, Docker Hub's aliases as index.docker.io.
func normalizeHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(h), ":443")
	if slices.Contains(dockerHubHosts, h) {
		return DefaultRegistry
	}
	return h
}

// RepositoryOf is Repository of a parsed reference. Every spelling of a
// registry that pulls the same image gives the same repository, so that no
// spelling escapes the globs written for it.
func RepositoryOf(ref name.Reference) string {
	host := normalizeHost(ref.Context().RegistryStr())
	repo := ref.Context().RepositoryStr()
	if host == DefaultRegistry && !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	return host + "/" + repo
}

// isHost reports whether the first segment of a glob names a registry (as
// Docker decides it: a dot, a port or localhost), wildcards allowed.
func isHost(seg string) bool {
	return strings.ContainsAny(seg, ".:") || seg == "localhost"
}

// normalizeGlob gives a glob the registry host an image without one gets,
// and folds host spellings as RepositoryOf does, so that "nginx",
// "library/*" and "docker.io/**" mean what they would mean in a Pod.
func normalizeGlob(g string) (string, error) {
	if g == "" {
		return "", fmt.Errorf("empty glob")
	}
	if strings.ContainsAny(g, "@ \t\n") {
		return "", fmt.Errorf("glob %q: globs match repositories; digests and spaces are not allowed", g)
	}
	if strings.HasSuffix(g, "/") || strings.Contains(g, "//") {
		return "", fmt.Errorf("glob %q: empty path segment", g)
	}
	segs := strings.Split(g, "/")
	if strings.Contains(segs[len(segs)-1], ":") {
		return "", fmt.Errorf("glob %q: globs match repositories; a tag is not part of the match", g)
	}
	for _, s := range segs {
		if strings.Contains(s, "**") && s != "**" {
			return "", fmt.Errorf("glob %q: ** must be a whole path segment", g)
		}
	}
	switch {
	case g == "**":
		return g, nil // everything
	case len(segs) > 1 && isHost(segs[0]):
		if segs[0] != strings.ToLower(segs[0]) {
			return "", fmt.Errorf("glob %q: registry host must be lower case", g)
		}
		segs[0] = normalizeHost(segs[0])
	default:
		// No registry host: Docker Hub.
		segs = append([]string{DefaultRegistry}, segs...)
	}
	// Docker Hub's one-segment names are official images: "nginx" is
	// "library/nginx" ("*" too, but "**" stays everything on Docker Hub).
	if segs[0] == DefaultRegistry && len(segs) == 2 && segs[1] != "**" {
		segs = []string{DefaultRegistry, "library", segs[1]}
	}
	return strings.Join(segs, "/"), nil
}

// globRegexp compiles a normalised glob: "*" and "?" stay within a path
// segment, "**" spans segments ("a/**" matches "a/b/c", not "a").
func globRegexp(g string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	segs := strings.Split(g, "/")
	for i, s := range segs {
		if i > 0 {
			b.WriteString("/")
		}
		if s == "**" {
			b.WriteString(".+")
			continue
		}
		for _, r := range s {
			switch r {
			case '*':
				b.WriteString("[^/]*")
			case '?':
				b.WriteString("[^/]")
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// patternIndex finds the globs that match a repository. Globs are stored in
// a trie of their literal leading path segments; only the globs hanging at
// the nodes an image's path walks through are tested, so the cost of a
// lookup follows the depth of the image's path and the number of wildcard
// globs sharing its prefix, not the number of policies.
type patternIndex struct {
	root *trieNode
}

type trieNode struct {
	children map[string]*trieNode
	exact    []int          // policies whose glob is exactly this path
	below    []int          // policies whose glob is this path and "/**": every repository under it
	wild     []wildcardGlob // globs whose next segment has a wildcard
}

type wildcardGlob struct {
	re     *regexp.Regexp
	policy int
	// ref: a ClusterImagePolicy glob, matched against the whole reference
	// (matchRef), not the repository.
	ref bool
}

func newPatternIndex() *patternIndex { return &patternIndex{root: &trieNode{}} }

// add files a normalised glob for policy number p.
func (x *patternIndex) add(glob string, p int) {
	n := x.root
	segs := strings.Split(glob, "/")
	for i, s := range segs {
		if s == "**" && i == len(segs)-1 {
			// The commonest glob, a literal prefix and "/**", needs no
			// regexp: it matches every repository under its node.
			n.below = append(n.below, p)
			return
		}
		if strings.ContainsAny(s, "*?") {
			n.wild = append(n.wild, wildcardGlob{re: globRegexp(glob), policy: p})
			return
		}
		n = n.child(s)
	}
	n.exact = append(n.exact, p)
}

// child returns the child for segment s, made when missing.
func (n *trieNode) child(s string) *trieNode {
	if n.children == nil {
		n.children = map[string]*trieNode{}
	}
	c := n.children[s]
	if c == nil {
		c = &trieNode{}
		n.children[s] = c
	}
	return c
}

// addPolicy files every glob of policy number idx: an ImagePolicy's by its
// normalised repository glob, a ClusterImagePolicy's by its literal prefix.
func (x *patternIndex) addPolicy(p *ImagePolicy, idx int) {
	if p.Kind == KindClusterImagePolicy {
		for _, r := range p.refs {
			x.addRef(r.glob, r.re, idx)
		}
		return
	}
	for _, g := range p.Globs {
		x.add(g, idx)
	}
}

// addRef files a ClusterImagePolicy glob, compiled, for policy number p
// at the node of its literal prefix (refGlobPrefix).
func (x *patternIndex) addRef(glob string, re *regexp.Regexp, p int) {
	n := x.root
	for _, s := range refGlobPrefix(glob) {
		n = n.child(s)
	}
	n.wild = append(n.wild, wildcardGlob{re: re, policy: p, ref: true})
}

// match calls fn for each policy with a glob matching img; a policy with
// several matching globs may be reported more than once.
func (x *patternIndex) match(img Image, fn func(policy int)) {
	n := x.root
	repo := img.Repository
	rest := repo
	for n != nil {
		for _, w := range n.wild {
			if w.ref && matchRef(w.re, img) || !w.ref && w.re.MatchString(repo) {
				fn(w.policy)
			}
		}
		if rest != "" {
			for _, p := range n.below {
				fn(p)
			}
		}
		if rest == "" {
			for _, p := range n.exact {
				fn(p)
			}
			return
		}
		seg := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
			if rest == "" {
				return // trailing slash: not a repository
			}
		} else {
			rest = ""
		}
		n = n.children[seg]
	}
}
