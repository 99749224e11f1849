package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"ward.dev/ward/admission/registration"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/spf13/cobra"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"ward.dev/ward/admission"
	"ward.dev/ward/admission/imageverify"
	"ward.dev/ward/bundle/keys"
	"ward.dev/ward/internal/gitserver"
	"ward.dev/ward/internal/imagesign"
	"ward.dev/ward/internal/policyrepo"
	"ward.dev/ward/internal/server"
	"ward.dev/ward/sync/source"
	"ward.dev/ward/sync/syncer"
)

func newDemoCommand() *cobra.Command {
	var (
		keep      bool
		apiserver bool
		assets    string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "The whole story on this machine, no cluster needed",
		Long: `Tell ward's story end to end on this machine, with real parts and no
cluster: a policy repository and TUF repository with fresh keys; a local
registry with a signed and an unsigned image; bundle v1 published to dev over
Git (git http-backend on a loopback port); the controller (sync loop and
webhook over HTTPS) admitting the signed image and denying the unsigned one
with provenance; a policy change committed, published and hot-swapped; the
same bundle promoted to prod; a git revert published as a higher version;
and a replay of old metadata refused while the current policy keeps being
enforced. Each step prints what it did and what came out. Exit 0 only if
every step behaved as expected. Needs git.

With --apiserver the admission steps go through a real kube-apiserver and
etcd (started here; build them once with hack/kube-assets.sh, which prints
the folder for --kube-assets or KUBEBUILDER_ASSETS): ward is registered
with Validating and Mutating webhook configurations, and Pods are created
with client-go.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := &demo{out: cmd.OutOrStdout(), ctx: cmd.Context()}
			if apiserver {
				if assets == "" {
					return errors.New("--apiserver needs kube-apiserver and etcd: run hack/kube-assets.sh and pass the folder it prints as --kube-assets (or KUBEBUILDER_ASSETS)")
				}
				d.assets = assets
			}
			return d.run(keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo's folder")
	cmd.Flags().BoolVar(&apiserver, "apiserver", false, "run the admission steps through a real kube-apiserver")
	cmd.Flags().StringVar(&assets, "kube-assets", os.Getenv("KUBEBUILDER_ASSETS"), "folder holding kube-apiserver and etcd (hack/kube-assets.sh)")
	return cmd
}

type demo struct {
	ctx              context.Context
	out              io.Writer
	step             int
	dir              string
	repo             string // the policy repository
	reg              string // registry host
	git              string // Git server URL
	gitU             string
	gitP             string
	signed, unsigned name.Digest
	webhooks         map[string]*demoController
	// With --apiserver: the control plane's binaries, and a client.
	assets  string
	kube    client.Client
	pods    int
	stopAPI func()
}

type demoController struct {
	syn    *syncer.Syncer
	addr   string
	client *http.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func (d *demo) say(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "\n%d. %s\n", d.step, fmt.Sprintf(format, args...))
}
func (d *demo) line(format string, args ...any) { fmt.Fprintf(d.out, "     "+format+"\n", args...) }
func (d *demo) ok(format string, args ...any) {
	fmt.Fprintf(d.out, "   \033[32mok\033[0m %s\n", fmt.Sprintf(format, args...))
}

// ward runs a ward command in-process, printing it and its output.
func (d *demo) ward(args ...string) (string, error) {
	fmt.Fprintf(d.out, "   $ ward %s\n", strings.Join(args, " "))
	var out, errOut bytes.Buffer
	code := run(d.ctx, args, &out, &errOut)
	for _, l := range strings.Split(strings.TrimRight(out.String()+errOut.String(), "\n"), "\n") {
		if l != "" {
			d.line("%s", l)
		}
	}
	if code != 0 {
		return out.String(), fmt.Errorf("ward %s exited %d", args[0], code)
	}
	return out.String(), nil
}

// gitCmd runs git in the policy repository.
func (d *demo) gitCmd(args ...string) (string, error) {
	shown := strings.Join(args, " ")
	if d.gitP != "" {
		shown = strings.ReplaceAll(shown, d.gitP, "***")
	}
	fmt.Fprintf(d.out, "   $ git %s\n", shown)
	c := exec.CommandContext(d.ctx, "git", args...)
	c.Dir = d.repo
	c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=demo", "GIT_AUTHOR_EMAIL=demo@ward.invalid", "GIT_COMMITTER_NAME=demo", "GIT_COMMITTER_EMAIL=demo@ward.invalid", "GIT_TERMINAL_PROMPT=0")
	out, err := c.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (d *demo) run(keep bool) (err error) {
	// The demo tells its story itself; controller-runtime (envtest, the
	// client) gets a logger so that it does not complain of having none.
	ctrllog.SetLogger(logr.Discard())
	start := time.Now()
	if _, err := exec.LookPath("git"); err != nil {
		return errors.New("the demo needs git (make demo installs it)")
	}
	if d.dir, err = os.MkdirTemp("", "ward-demo-"); err != nil {
		return err
	}
	d.webhooks = map[string]*demoController{}
	defer func() {
		if d.stopAPI != nil {
			d.stopAPI()
		}
		for _, c := range d.webhooks {
			c.cancel()
			<-c.done
		}
		if keep {
			fmt.Fprintf(d.out, "\nkept %s\n", d.dir)
		} else {
			os.RemoveAll(d.dir)
		}
		if err != nil {
			fmt.Fprintf(d.out, "   \033[31mFAILED\033[0m %v\n", err)
			err = failed(fmt.Errorf("demo step %d failed: %w", d.step, err))
		}
	}()
	fmt.Fprintf(d.out, "ward demo in %s\n", d.dir)
	for _, step := range []func() error{d.initRepo, d.registry, d.publishV1, d.serveDev, d.admit, d.hotSwap, d.promote, d.revert, d.replay} {
		if err := step(); err != nil {
			return err
		}
	}
	fmt.Fprintf(d.out, "\n\033[32mAll %d steps behaved as expected\033[0m in %s.\n", d.step, time.Since(start).Round(100*time.Millisecond))
	return nil
}

func (d *demo) initRepo() error {
	d.say("a policy repository and a TUF repository with fresh keys")
	d.repo = filepath.Join(d.dir, "policies")
	if _, err := d.ward("init", d.repo, "--envs", "dev,prod"); err != nil {
		return err
	}
	d.ok("ward.yaml, policies/, tests/, tuf/ (dev and prod roles) and keys/ (git-ignored)")
	return nil
}

// serveLoopback serves h on a free loopback port until the demo ends.
func (d *demo) serveLoopback(h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(l)
	go func() { <-d.ctx.Done(); srv.Close() }()
	return l.Addr().String(), nil
}

func (d *demo) registry() error {
	d.say("a local registry with a signed and an unsigned image")
	addr, err := d.serveLoopback(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)))
	if err != nil {
		return err
	}
	d.reg = addr
	signer, err := keys.Load(d.ctx, filepath.Join(d.repo, "keys", "cosign.key"))
	if err != nil {
		return err
	}
	pub, err := signer.PublicKey()
	if err != nil {
		return err
	}
	if d.signed, err = imagesign.PushRandomImage(d.reg + "/team/app:v1"); err != nil {
		return err
	}
	if err := imagesign.SignBundle(d.signed, d.signed, signer, pub, "", nil); err != nil {
		return err
	}
	if d.unsigned, err = imagesign.PushRandomImage(d.reg + "/team/tool:v1"); err != nil {
		return err
	}
	d.line("registry on http://%s (go-containerregistry, with the referrers API)", d.reg)
	d.line("%s/team/app:v1  signed with keys/cosign.key (cosign v3's bundle format)", d.reg)
	d.line("%s/team/tool:v1 not signed", d.reg)
	policy := filepath.Join(d.repo, "policies", "example-image-policy.yaml")
	data, err := os.ReadFile(policy)
	if err != nil {
		return err
	}
	if err := os.WriteFile(policy, []byte(strings.Replace(string(data), "registry.example.com/team/**", d.reg+"/team/**", 1)), 0o644); err != nil {
		return err
	}
	d.ok("the example ImagePolicy now covers %s/team/**", d.reg)
	return nil
}

func (d *demo) publishV1() error {
	d.say("bundle v1 published to dev, pushed to a Git branch")
	root := filepath.Join(d.dir, "git")
	d.gitU, d.gitP = "ward", "demo-git-secret"
	h, err := gitserver.Handler(root, d.gitU, d.gitP)
	if err != nil {
		return err
	}
	if err := gitserver.InitBare(filepath.Join(root, "tuf.git")); err != nil {
		return err
	}
	addr, err := d.serveLoopback(h)
	if err != nil {
		return err
	}
	d.git = "http://" + addr + "/tuf.git"
	repo, err := policyrepo.Load(d.repo)
	if err != nil {
		return err
	}
	repo.Config.Remotes = []policyrepo.Remote{{Git: &policyrepo.GitRemote{URL: d.git, Branch: "tuf"}}}
	if err := repo.Save(); err != nil {
		return err
	}
	os.Setenv("WARD_GIT_USERNAME", d.gitU)
	os.Setenv("WARD_GIT_PASSWORD", d.gitP)
	d.line("Git server: git http-backend on %s, basic auth; ward.yaml pushes tuf/ to its branch tuf", addr)
	// The policy repository tracks the policies; the signed TUF repository
	// lives on the Git branch ward pushes to.
	if err := ensureGitignore(d.repo, "tuf/"); err != nil {
		return err
	}
	if _, err := d.gitCmd("init", "-q", "-b", "main"); err != nil {
		return err
	}
	if _, err := d.gitCmd("add", "-A"); err != nil {
		return err
	}
	if _, err := d.gitCmd("commit", "-qm", "initial policies"); err != nil {
		return err
	}
	if _, err := d.ward("test", d.repo); err != nil {
		return err
	}
	if _, err := d.ward("publish", "--env", "dev", d.repo); err != nil {
		return err
	}
	d.ok("dev v1 signed and pushed")
	return nil
}

// controller runs the sync loop and the webhook for env, following the
// Git branch.
func (d *demo) controller(env string) (*demoController, error) {
	root, err := os.ReadFile(filepath.Join(d.repo, "tuf", "metadata", "1.root.json"))
	if err != nil {
		return nil, err
	}
	state := filepath.Join(d.dir, "state-"+env)
	src := &source.Git{URL: d.git, Branch: "tuf", Auth: &githttp.BasicAuth{Username: d.gitU, Password: d.gitP}, CacheDir: filepath.Join(state, "git")}
	pols := &admission.Policies{}
	syn, err := syncer.New([]syncer.Spec{{Name: env, Env: env, Root: root, Source: src, Interval: time.Hour}}, state, pols)
	if err != nil {
		return nil, err
	}
	cert, caFile, err := server.SelfSignedCert(filepath.Join(state, "tls"), []string{"127.0.0.1"})
	if err != nil {
		return nil, err
	}
	srv, err := server.Listen(server.Options{Addr: "127.0.0.1:0", HealthAddr: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Webhook: admission.NewWebhook(admission.NewDecider(imageverify.New()), pols), Syncer: syn})
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ctx, cancel := context.WithCancel(d.ctx)
	c := &demoController{syn: syn, addr: srv.Addr(), cancel: cancel, done: make(chan struct{}),
		client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}
	go func() {
		defer close(c.done)
		go srv.Serve(ctx)
		syn.Run(ctx)
	}()
	d.webhooks[env] = c
	d.line("controller for %s: sync loop following %s (branch tuf), webhook on https://%s", env, d.git, c.addr)
	return c, c.waitReady(d.ctx)
}

func (c *demoController) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for !c.syn.Ready() {
		if time.Now().After(deadline) {
			return fmt.Errorf("no verified bundle after 30 s: %s", c.syn.Statuses()[0].LastError)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// waitVersion waits until the controller enforces version v.
func (c *demoController) waitVersion(v int64) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := c.syn.Statuses()[0]
		if st.Applied != nil && st.Applied.Version == v {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("v%d not enforced after 30 s (status: %+v)", v, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *demo) serveDev() error {
	d.say("the controller: sync dev from Git, verify through the pinned root, serve the webhook")
	c, err := d.controller("dev")
	if err != nil {
		return err
	}
	a := c.syn.Statuses()[0].Applied
	d.ok("enforcing dev v%d (%s, commit %s)", a.Version, a.Digest, a.Commit[:12])
	if d.assets != "" {
		return d.startAPIServer(c)
	}
	return nil
}

// startAPIServer runs kube-apiserver and etcd and registers the dev
// controller's webhook with them.
func (d *demo) startAPIServer(c *demoController) error {
	env := &envtest.Environment{BinaryAssetsDirectory: d.assets}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("failed to start kube-apiserver and etcd from %s: %w", d.assets, err)
	}
	go func() { <-d.ctx.Done(); env.Stop() }()
	d.stopAPI = func() { _ = env.Stop() }
	if d.kube, err = client.New(cfg, client.Options{}); err != nil {
		return err
	}
	ca, err := os.ReadFile(filepath.Join(d.dir, "state-dev", "tls", "serving.crt"))
	if err != nil {
		return err
	}
	vwc, mwc := registration.ForURL("ward", c.addr, ca)
	objs := []client.Object{vwc, mwc, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}}
	for _, o := range objs {
		if err := d.kube.Create(d.ctx, o); err != nil {
			return err
		}
	}
	d.line("kube-apiserver on %s; ward registered with Validating and Mutating webhook configurations (failurePolicy Fail)", cfg.Host)
	return nil
}

// review sends an AdmissionReview for a Pod with image to path.
func (c *demoController) review(path, image string, labels map[string]string) (*admissionv1.AdmissionResponse, error) {
	meta := map[string]any{"name": "demo", "namespace": "apps"}
	if labels != nil {
		meta["labels"] = labels
	}
	pod := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": meta,
		"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": image}}}}
	raw, _ := json.Marshal(pod)
	body, _ := json.Marshal(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": map[string]any{
		"uid": "demo", "kind": map[string]any{"group": "", "version": "v1", "kind": "Pod"}, "resource": map[string]any{"group": "", "version": "v1", "resource": "pods"},
		"namespace": "apps", "name": "demo", "operation": "CREATE", "object": json.RawMessage(raw)}})
	resp, err := c.client.Post("https://"+c.addr+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ar admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&ar); err != nil || ar.Response == nil {
		return nil, fmt.Errorf("no AdmissionReview from the webhook: %v", err)
	}
	return ar.Response, nil
}

// admitPod runs a Pod through /mutate then /validate, as the API server
// does, and returns the verdict and the pinned image.
func (d *demo) admitPod(env, image string, labels map[string]string) (bool, string, string, error) {
	if d.kube != nil && env == "dev" {
		d.pods++
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("demo-%d", d.pods), Namespace: "apps", Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}
		var err error
		for range 100 { // the API server may call the webhook only once it is registered
			if err = d.kube.Create(d.ctx, p); err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			v := d.webhooks[env].syn.Statuses()[0].Applied.Version
			return false, "", fmt.Sprintf("%s [via kube-apiserver; dev enforces v%d]", err, v), nil
		}
		v := d.webhooks[env].syn.Statuses()[0].Applied.Version
		return true, p.Spec.Containers[0].Image, fmt.Sprintf(" [via kube-apiserver; bundle-version %d]", v), nil
	}
	c := d.webhooks[env]
	m, err := c.review(admission.PathMutate, image, labels)
	if err != nil {
		return false, "", "", err
	}
	pinned := image
	if len(m.Patch) > 0 {
		var ops []struct{ Value string }
		json.Unmarshal(m.Patch, &ops)
		if len(ops) > 0 {
			pinned = ops[0].Value
		}
	}
	v, err := c.review(admission.PathValidate, pinned, labels)
	if err != nil {
		return false, "", "", err
	}
	msg := ""
	if v.Result != nil {
		msg = v.Result.Message
	}
	return v.Allowed, pinned, msg + " [bundle-version " + v.AuditAnnotations["bundle-version"] + "]", nil
}

func (d *demo) admit() error {
	d.say("admission: the signed image runs, pinned to its digest; the unsigned one is denied")
	signedTag := d.reg + "/team/app:v1"
	ok, pinned, info, err := d.admitPod("dev", signedTag, map[string]string{"app": "web"})
	if err != nil {
		return err
	}
	d.line("Pod with %s: allowed=%t, pinned to %s %s", signedTag, ok, pinned, info)
	if !ok || pinned != d.signed.String() {
		return fmt.Errorf("the signed image was not admitted pinned to %s", d.signed)
	}
	ok, _, msg, err := d.admitPod("dev", d.reg+"/team/tool:v1", map[string]string{"app": "tool"})
	if err != nil {
		return err
	}
	d.line("Pod with %s/team/tool:v1: allowed=%t", d.reg, ok)
	d.line("  %s", msg)
	if ok || !strings.Contains(msg, "no signatures found") || !strings.Contains(msg, "bundle dev: dev v1") {
		return errors.New("the unsigned image was not denied with provenance")
	}
	d.ok("signed admitted by digest; unsigned denied, naming the image, policy, authority and bundle")
	return nil
}

const labelPolicy = `# Pods must say which app they are.
apiVersion: policy.ward.dev/v1
kind: ValidationPolicy
metadata: {name: pods-have-an-app-label}
spec:
  match: {kinds: [Pod]}
  validations:
  - expression: "has(object.metadata.labels) && 'app' in object.metadata.labels"
    message: Pods need an app label
`

// trigger asks a controller to sync now, as a Git host's webhook would.
func (d *demo) trigger(env string) {
	d.line("push notification: sync %s now", env)
	d.webhooks[env].syn.Trigger(env)
}

func (d *demo) hotSwap() error {
	d.say("a policy change, committed and published: hot-swapped with no restart")
	if err := os.WriteFile(filepath.Join(d.repo, "policies", "app-label.yaml"), []byte(labelPolicy), 0o644); err != nil {
		return err
	}
	if _, err := d.gitCmd("add", "-A"); err != nil {
		return err
	}
	if _, err := d.gitCmd("commit", "-qm", "Pods need an app label"); err != nil {
		return err
	}
	if _, err := d.ward("publish", "--env", "dev", d.repo); err != nil {
		return err
	}
	d.trigger("dev")
	if err := d.webhooks["dev"].waitVersion(2); err != nil {
		return err
	}
	ok, _, msg, err := d.admitPod("dev", d.reg+"/team/app:v1", nil)
	if err != nil {
		return err
	}
	d.line("Pod with the signed image and no labels: allowed=%t", ok)
	d.line("  %s", msg)
	if ok || !strings.Contains(msg, "Pods need an app label") {
		return errors.New("dev v2's policy is not enforced")
	}
	d.ok("dev v2 enforced by the running webhook")
	return nil
}

func (d *demo) promote() error {
	d.say("promote dev to prod: the same bytes, signed by prod's key")
	if _, err := d.ward("promote", "--from", "dev", "--to", "prod", d.repo); err != nil {
		return err
	}
	c, err := d.controller("prod")
	if err != nil {
		return err
	}
	dev, prod := d.webhooks["dev"].syn.Statuses()[0].Applied, c.syn.Statuses()[0].Applied
	d.line("dev enforces v%d %s; prod enforces v%d %s", dev.Version, dev.Digest, prod.Version, prod.Digest)
	if dev.Digest != prod.Digest {
		return errors.New("prod does not enforce dev's bytes")
	}
	d.ok("prod v1 is dev v2, byte for byte")
	return nil
}

func (d *demo) revert() error {
	d.say("a bad change is reverted with git revert: published as a new, higher version")
	if _, err := d.gitCmd("revert", "--no-edit", "HEAD"); err != nil {
		return err
	}
	if _, err := d.ward("publish", "--env", "dev", d.repo); err != nil {
		return err
	}
	d.trigger("dev")
	if err := d.webhooks["dev"].waitVersion(3); err != nil {
		return err
	}
	ok, _, info, err := d.admitPod("dev", d.reg+"/team/app:v1", nil)
	if err != nil {
		return err
	}
	d.line("Pod with the signed image and no labels: allowed=%t %s", ok, info)
	if !ok {
		return errors.New("the reverted policy is still enforced")
	}
	d.ok("dev v3 has v1's policies: going back means going forward")
	return nil
}

func (d *demo) replay() error {
	d.say("an attacker with push access replays old signed metadata: refused")
	old := filepath.Join(d.dir, "old-timestamp.json")
	// The timestamp of dev v2, kept from the branch's history.
	if _, err := d.gitCmd("-C", d.dir, "clone", "-q", "--branch", "tuf", strings.Replace(d.git, "http://", "http://"+d.gitU+":"+d.gitP+"@", 1), filepath.Join(d.dir, "attacker")); err != nil {
		return err
	}
	attacker := filepath.Join(d.dir, "attacker")
	for _, args := range [][]string{
		{"-C", attacker, "show", "HEAD~1:metadata/timestamp.json"},
	} {
		out, err := d.gitCmd(args...)
		if err != nil {
			return err
		}
		if err := os.WriteFile(old, []byte(out), 0o644); err != nil {
			return err
		}
	}
	if err := copyFile(old, filepath.Join(attacker, "metadata", "timestamp.json")); err != nil {
		return err
	}
	for _, args := range [][]string{{"-C", attacker, "commit", "-qam", "an old timestamp"}, {"-C", attacker, "push", "-q", "origin", "tuf"}} {
		if _, err := d.gitCmd(args...); err != nil {
			return err
		}
	}
	d.trigger("dev")
	c := d.webhooks["dev"]
	deadline := time.Now().Add(30 * time.Second)
	for c.syn.Statuses()[0].LastError == "" {
		if time.Now().After(deadline) {
			return errors.New("the replay was not refused")
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := c.syn.Statuses()[0]
	d.line("sync refused (%s): %s", st.LastReason, st.LastError)
	ok, _, info, err := d.admitPod("dev", d.reg+"/team/tool:v1", map[string]string{"app": "tool"})
	if err != nil {
		return err
	}
	d.line("the unsigned image again: allowed=%t %s", ok, info)
	if ok || st.Applied.Version != 3 || !(strings.Contains(info, "bundle-version 3") || strings.Contains(info, "dev v3")) {
		return errors.New("the current policy is not enforced after the replay")
	}
	d.ok("replay refused; dev v3 keeps being enforced")
	return nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o644)
}
