package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"ward.dev/ward/bundle/keys"
	"ward.dev/ward/internal/imagesign"
	"ward.dev/ward/internal/signtest"
)

// installStep is the examples' install line: ward is on the test's PATH
// instead (ward.dev is not a module host this machine reaches).
const installStep = "go install ward.dev/ward/cmd/ward@latest"

// githubJobs reads the GitHub Actions example: each job's run steps, with
// ${{ secrets.X }}, ${{ inputs.x }} and ${{ github.ref_name }} turned into
// the environment variables X, INPUT_X and GITHUB_REF_NAME.
func githubJobs(t *testing.T) map[string][]string {
	t.Helper()
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				Uses string `json:"uses"`
				Run  string `json:"run"`
			} `json:"steps"`
		} `json:"jobs"`
	}
	readYAML(t, "github-actions.yaml", &wf)
	expr := regexp.MustCompile(`\$\{\{\s*([a-z_]+)\.([A-Za-z_]+)\s*\}\}`)
	jobs := map[string][]string{}
	for name, job := range wf.Jobs {
		for _, st := range job.Steps {
			if st.Run == "" || strings.TrimSpace(st.Run) == installStep {
				continue
			}
			jobs[name] = append(jobs[name], expr.ReplaceAllStringFunc(st.Run, func(m string) string {
				g := expr.FindStringSubmatch(m)
				switch g[1] {
				case "secrets":
					return "$" + g[2]
				case "inputs":
					return "$INPUT_" + strings.ToUpper(g[2])
				case "github":
					return "$GITHUB_" + strings.ToUpper(g[2])
				}
				t.Fatalf("github-actions.yaml: unknown expression %s", m)
				return ""
			}))
		}
	}
	return jobs
}

// gitlabJobs reads the GitLab CI example: each job's before_script (the
// default's) and script lines.
func gitlabJobs(t *testing.T) map[string][]string {
	t.Helper()
	var doc map[string]struct {
		BeforeScript []string `json:"before_script"`
		Script       []string `json:"script"`
	}
	readYAML(t, "gitlab-ci.yml", &doc)
	jobs := map[string][]string{}
	for name, job := range doc {
		if name == "default" {
			continue
		}
		for _, line := range append(append([]string{}, doc["default"].BeforeScript...), job.Script...) {
			if strings.TrimSpace(line) != installStep {
				jobs[name] = append(jobs[name], line)
			}
		}
	}
	return jobs
}

func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// runJob runs a job's steps as a CI runner would: in a fresh clone of
// origin, each step in bash -eo pipefail, with env; a failing step fails
// the job.
func (sh *shell) runJob(t *testing.T, origin, job string, steps []string, env ...string) string {
	t.Helper()
	if len(steps) == 0 {
		t.Fatalf("job %s has no steps", job)
	}
	dir := filepath.Join(t.TempDir(), "checkout")
	if out, err := exec.Command("git", "clone", "-q", origin, dir).CombinedOutput(); err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	var all strings.Builder
	for _, step := range steps {
		cmd := exec.Command("timeout", "120", "bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), append([]string{"PATH=" + sh.bin + ":" + os.Getenv("PATH"), "HOME=" + sh.home}, env...)...)
		out, err := cmd.CombinedOutput()
		all.Write(out)
		if err != nil {
			t.Fatalf("job %s, step %q: %v\n%s", job, step, err, all.String())
		}
	}
	return all.String()
}

// The example CI pipelines (docs/examples) run as written, against a
// policy repository whose origin is a local bare repository: pull-request
// checks, publishing on merges (again with nothing new), promotion,
// timestamp refreshes, alternating GitHub's and GitLab's jobs on one
// repository; the signed TUF repository they commit back verifies.
func TestCIExamples(t *testing.T) {
	gh, gl := githubJobs(t), gitlabJobs(t)
	for _, job := range []string{"check", "publish", "promote", "timestamp"} {
		if len(gh[job]) == 0 || len(gl[job]) == 0 {
			t.Fatalf("job %s missing: github %d steps, gitlab %d", job, len(gh[job]), len(gl[job]))
		}
	}
	sh := newShell(t)
	work := filepath.Join(sh.home, "work")
	secrets := filepath.Join(sh.home, "secrets")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}

	// The policy repository: its policy trusts keys/cosign.key for a
	// registry holding a signed image, deploy/ runs that image.
	host := signtest.Registry(t, true)
	img := signtest.PushImage(t, host+"/team/app:v1")
	sh.run(t, work, "ward init policies >/dev/null && mv policies/keys "+secrets)
	signer, err := keys.Load(t.Context(), filepath.Join(secrets, "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := imagesign.SignLegacy(img, img, signer); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(work, "policies")
	policy := filepath.Join(repo, "policies", "example-image-policy.yaml")
	data, _ := os.ReadFile(policy)
	writeFile(t, policy, strings.Replace(string(data), "registry.example.com/team/**", host+"/team/**", 1))
	writeFile(t, filepath.Join(repo, "deploy", "app.yaml"), deployment("app", img.String()))
	origin := filepath.Join(work, "origin.git")
	sh.run(t, work, "cd policies && git init -q -b main && git add -A && git commit -qm initial && cd .. && git clone -q --bare policies origin.git")

	keyEnv := func(extra ...string) []string {
		return append([]string{
			"WARD_DEV_KEY=" + filepath.Join(secrets, "dev.key"),
			"WARD_SNAPSHOT_KEY=" + filepath.Join(secrets, "snapshot.key"),
			"WARD_TIMESTAMP_KEY=" + filepath.Join(secrets, "timestamp.key"),
			"TUF_BRANCH_TOKEN=", "GITHUB_REF_NAME=main",
			"CI_COMMIT_BRANCH=main", "CI_DEFAULT_BRANCH=main", "WARD_PUSH_URL=" + origin,
		}, extra...)
	}
	if out := sh.runJob(t, origin, "github check", gh["check"], keyEnv()...); !strings.Contains(out, "ALLOWED  Deployment apps/app") {
		t.Fatalf("the pull-request check:\n%s", out)
	}
	sh.runJob(t, origin, "gitlab check", gl["check"], keyEnv()...)
	sh.runJob(t, origin, "github publish", gh["publish"], keyEnv()...)

	// A policy change is merged; GitLab publishes it; GitHub publishes
	// again with nothing new, which commits nothing.
	sh.run(t, work, fmt.Sprintf(`git clone -q %s change && cd change && sed -i 's/mode: enforce/mode: warn/' policies/example-image-policy.yaml &&
		git commit -qam "warn only" && git push -q origin HEAD:main`, origin))
	sh.runJob(t, origin, "gitlab publish", gl["publish"], keyEnv()...)
	if out := sh.runJob(t, origin, "github publish", gh["publish"], keyEnv()...); !strings.Contains(out, "dev v2 already serves these policies") {
		t.Fatalf("publish with nothing new printed:\n%s", out)
	}
	sh.runJob(t, origin, "github promote", gh["promote"], keyEnv("INPUT_FROM=dev", "INPUT_TO=staging", "WARD_PROMOTE_KEY="+filepath.Join(secrets, "staging.key"))...)
	sh.runJob(t, origin, "gitlab promote", gl["promote"], keyEnv("WARD_PROMOTE_FROM=staging", "WARD_PROMOTE_TO=prod", "WARD_PROMOTE_KEY="+filepath.Join(secrets, "prod.key"))...)
	sh.runJob(t, origin, "github timestamp", gh["timestamp"], keyEnv()...)
	sh.runJob(t, origin, "gitlab timestamp", gl["timestamp"], keyEnv()...)

	// What the pipelines committed back verifies, from root v1.
	final := filepath.Join(work, "final")
	sh.run(t, work, "git clone -q "+origin+" final")
	root := filepath.Join(final, "tuf", "metadata", "1.root.json")
	dev := verifiedJSON(t, "--env", "dev", "--root", root, final)
	staging := verifiedJSON(t, "--env", "staging", "--root", root, final)
	prod := verifiedJSON(t, "--env", "prod", "--root", root, final)
	if dev.Version != 2 || staging.Version != 1 || prod.Version != 1 || prod.Digest != dev.Digest || staging.Digest != dev.Digest {
		t.Fatalf("dev %+v\nstaging %+v\nprod %+v", dev, staging, prod)
	}
	if log := sh.run(t, final, "git log --format=%s"); strings.Count(log, "ward: ") != 6 {
		t.Fatalf("want six commits by the pipelines (two publishes, two promotions, two timestamps):\n%s", log)
	}
}
