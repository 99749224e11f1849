package policies

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Image is an image reference as the index matches it.
type Image struct {
	// Repository is the normalised repository (see Repository): what
	// ImagePolicy globs match.
	Repository string
	// Name is the full reference as go-containerregistry names it:
	// registry, repository, and ":tag" or "@digest", Docker Hub's
	// implicit parts made explicit ("index.docker.io/library/nginx:1.27"):
	// what ClusterImagePolicy globs match.
	Name string
	// Raw is the reference as the workload wrote it: ClusterImagePolicy
	// globs are matched against it too when Name does not match.
	Raw string
}

// ImageOf is the Image of a parsed reference written as raw.
func ImageOf(ref name.Reference, raw string) Image {
	return Image{Repository: RepositoryOf(ref), Name: ref.Name(), Raw: raw}
}

// ParseImage parses an image reference as a workload writes it.
func ParseImage(raw string) (Image, error) {
	ref, err := name.ParseReference(raw, name.WeakValidation)
	if err != nil {
		return Image{}, fmt.Errorf("invalid image reference %q: %w", raw, err)
	}
	return ImageOf(ref, raw), nil
}

// refGlobChars are the characters a ClusterImagePolicy glob may hold.
var refGlobChars = regexp.MustCompile(`^[a-zA-Z0-9\-_:/*.@]+$`)

// compileRefGlob compiles a ClusterImagePolicy glob with
// policy-controller's meaning: matched against the whole reference, tag or
// digest included, anchored at both ends; "*" is any run of characters but
// "/", "**" any run at all (also inside a segment: "**demo**"); "." is
// literal; the globs "*" and "*/*" alone are Docker Hub's official images
// and Docker Hub's two-segment repositories. Other characters ("?", "[",
// spaces) are refused, as policy-controller refuses them.
func compileRefGlob(g string) (*regexp.Regexp, string, error) {
	switch g {
	case "*/*":
		g = DefaultRegistry + "/*/*"
	case "*":
		g = DefaultRegistry + "/library/*"
	}
	if !refGlobChars.MatchString(g) {
		return nil, "", fmt.Errorf("glob %q: only letters, digits and - _ : / * . @ may appear", g)
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(g); i++ {
		switch {
		case strings.HasPrefix(g[i:], "**"):
			b.WriteString(".*")
			i++
		case g[i] == '*':
			b.WriteString("[^/]*")
		default:
			b.WriteString(regexp.QuoteMeta(g[i : i+1]))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, "", fmt.Errorf("glob %q: %w", g, err)
	}
	return re, g, nil
}

// matchRef reports whether a compiled ClusterImagePolicy glob matches an
// image: its full name, or else the reference as written.
func matchRef(re *regexp.Regexp, img Image) bool {
	return re.MatchString(img.Name) || (img.Raw != "" && img.Raw != img.Name && re.MatchString(img.Raw))
}

// refGlobPrefix is where in the index a ClusterImagePolicy glob is filed:
// its leading whole literal segments (never the last one, which may carry
// a tag or digest), the registry host folded as RepositoryOf folds it, and
// Docker Hub's host put in front of a glob that names none (it can then
// only match a Docker Hub reference as written). Every image whose
// repository could match the glob walks through that node.
func refGlobPrefix(g string) []string {
	segs := strings.Split(g, "/")
	var prefix []string
	for _, s := range segs[:len(segs)-1] {
		if strings.Contains(s, "*") || s == "" {
			break
		}
		prefix = append(prefix, s)
	}
	if len(prefix) == 0 {
		return nil
	}
	if isHost(prefix[0]) {
		prefix[0] = normalizeHost(prefix[0])
	} else {
		prefix = append([]string{DefaultRegistry}, prefix...)
	}
	return prefix
}
