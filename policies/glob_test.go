package policies

import (
	"fmt"
	"testing"
)

// The index finds exactly the globs whose regexp matches, for every glob
// shape: literal, "*" and "?" within a segment, "**" at the end (filed
// without a regexp) or in the middle, and "**" alone.
func TestPatternIndexAgreesWithGlobRegexp(t *testing.T) {
	globs := []string{
		"**", "r.io/**", "r.io/team/**", "r.io/team/app", "r.io/team/app-*", "r.io/*/app", "r.io/**/app",
		"r.io/team/**/db", "r.io/t?am/**", "r.io/team/app/**", "other.io/**", "r.io/team",
	}
	repos := []string{
		"r.io/team", "r.io/team/app", "r.io/team/app-1", "r.io/team/app/db", "r.io/tea/app", "r.io/tram/x",
		"r.io/x/y/app", "r.io/app", "r.io", "other.io/a", "r.io/team/db", "r.io/teams/app", "r.io/team/x/y/db",
	}
	x := newPatternIndex()
	for i, g := range globs {
		x.add(g, i)
	}
	for _, repo := range repos {
		got := map[int]bool{}
		x.match(Image{Repository: repo}, func(p int) { got[p] = true })
		for i, g := range globs {
			if want := globRegexp(g).MatchString(repo); got[i] != want {
				t.Errorf("%s against %s: index %t, regexp %t", g, repo, got[i], want)
			}
		}
	}
	if n := fmt.Sprint(len(x.root.children["r.io"].children["team"].below)); n != "1" {
		t.Errorf("r.io/team/** filed with a regexp, not under its node (%s below)", n)
	}
}
