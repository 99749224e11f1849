package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion of ward's API.
var GroupVersion = schema.GroupVersion{Group: "ward.dev", Version: "v1alpha1"}

// Kind of the one resource.
const PolicySourceKind = "PolicySource"

// PolicySourceSpec says where a TUF repository of policy bundles lives,
// which environment's bundle to enforce, and the root to trust.
// +kubebuilder:validation:XValidation:rule="(has(self.root) ? 1 : 0) + (has(self.rootFile) ? 1 : 0) + (has(self.rootConfigMap) ? 1 : 0) == 1",message="exactly one of root, rootFile and rootConfigMap is required: the pinned TUF root"
// +kubebuilder:validation:XValidation:rule="(has(self.dir) ? 1 : 0) + (has(self.git) ? 1 : 0) + (has(self.oci) ? 1 : 0) == 1",message="exactly one source is required: dir, git or oci"
type PolicySourceSpec struct {
	// Env is the environment whose bundle is enforced.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`
	Env string `json:"env"`

	// Root is the pinned root.json (any version; later roots are followed
	// through the chain). Exactly one of root, rootFile and rootConfigMap.
	// +optional
	Root string `json:"root,omitempty"`
	// RootFile is a path to the pinned root.json (config files: relative to
	// the config file).
	// +optional
	RootFile string `json:"rootFile,omitempty"`
	// RootConfigMap names a ConfigMap key holding the pinned root.json, in
	// the controller's namespace.
	// +optional
	RootConfigMap *KeyRef `json:"rootConfigMap,omitempty"`

	// Interval between syncs (default 1m); a little jitter is added.
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Timeout of one sync (default 2m).
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// OnExpiry says what to do when the metadata has expired: keep (the
	// default) keeps enforcing the last verified bundle; deny-all denies
	// every image until fresh metadata verifies.
	// +kubebuilder:validation:Enum=keep;deny-all
	// +optional
	OnExpiry string `json:"onExpiry,omitempty"`
	// Suspend stops syncing; the last applied bundle stays enforced.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// Dir is a repository in a local directory. Exactly one of dir, git
	// and oci.
	// +optional
	Dir *DirSource `json:"dir,omitempty"`
	// Git is a repository in a Git branch.
	// +optional
	Git *GitSource `json:"git,omitempty"`
	// OCI is a repository stored as an OCI artifact.
	// +optional
	OCI *OCISource `json:"oci,omitempty"`
}

// KeyRef names a key of a ConfigMap or Secret in the controller's
// namespace.
type KeyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// LocalRef names a Secret in the controller's namespace.
type LocalRef struct {
	Name string `json:"name"`
}

// DirSource is a local directory holding metadata/ and targets/.
type DirSource struct {
	Path string `json:"path"`
}

// GitSource is a TUF repository in a Git repository.
type GitSource struct {
	// URL: https://, http://, ssh:// or git@host:path.
	URL string `json:"url"`
	// Branch to follow (default main), or a Tag, or a pinned Commit.
	// +optional
	Branch string `json:"branch,omitempty"`
	// +optional
	Tag string `json:"tag,omitempty"`
	// +optional
	Commit string `json:"commit,omitempty"`
	// Path of the TUF repository inside the Git repository (default: the
	// top; a policy repository made by `ward init` keeps it in "tuf").
	// +optional
	Path string `json:"path,omitempty"`
	// SecretRef holds credentials, with Flux's GitRepository keys: username
	// and password (or a token as password), or bearerToken, and ca.crt (a
	// private CA) for https; identity (a private key) and known_hosts for
	// ssh.
	// +optional
	SecretRef *LocalRef `json:"secretRef,omitempty"`
}

// OCISource is a TUF repository stored as an OCI artifact whose layers are
// the repository's files, each titled by its path.
// +kubebuilder:validation:XValidation:rule="!has(self.secretRef) || !has(self.provider) || self.provider == 'generic'",message="secretRef and a cloud provider exclude each other: the credentials come from one of them"
type OCISource struct {
	// URL is oci://registry/repository:tag or @sha256:….
	URL string `json:"url"`
	// SecretRef holds a docker config (.dockerconfigjson) for the registry.
	// +optional
	SecretRef *LocalRef `json:"secretRef,omitempty"`
	// Provider is the cloud whose registry credentials authenticate to the
	// registry, from the workload identity of ward's service account or its
	// environment, as Flux's OCIRepository provider: generic (secretRef, or
	// anonymous), aws (ECR), azure (ACR) or gcp (Artifact Registry, GCR).
	// +kubebuilder:validation:Enum=generic;aws;azure;gcp
	// +optional
	Provider string `json:"provider,omitempty"`
	// CertSecretRef holds ca.crt, a CA to trust for the registry.
	// +optional
	CertSecretRef *LocalRef `json:"certSecretRef,omitempty"`
	// Insecure allows plain HTTP.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
	// Verify requires a cosign signature on the artifact itself (either
	// format) before anything is read from it: defense in depth on top of
	// TUF.
	// +optional
	Verify *OCIVerify `json:"verify,omitempty"`
}

// OCIVerify names the key that must have signed the artifact.
type OCIVerify struct {
	// Key is a PEM public key (cosign.pub).
	Key string `json:"key"`
}

// AppliedBundle is the bundle a source enforces.
type AppliedBundle struct {
	Env      string `json:"env"`
	Version  int64  `json:"version"`
	Digest   string `json:"digest"`
	Commit   string `json:"commit,omitempty"`
	Policies int    `json:"policies"`
	// Revision is what was fetched (main@sha1:…, sha256:…).
	Revision   string      `json:"revision,omitempty"`
	AppliedAt  metav1.Time `json:"appliedAt"`
	VerifiedAt metav1.Time `json:"verifiedAt"`
	// Expired is true while the metadata has expired.
	Expired bool `json:"expired,omitempty"`
	// TrustRoots are the versions of the remote TrustRoots (TUF mirrors)
	// the policies were compiled with.
	// +optional
	TrustRoots string `json:"trustRoots,omitempty"`
	// ClusterReferences are what the policies read from the cluster
	// (Secrets named by key.secretRef, signaturePullSecrets), outside the
	// bundle's signatures.
	// +optional
	ClusterReferences []string `json:"clusterReferences,omitempty"`
}

// PolicySourceStatus is the observed state.
type PolicySourceStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// State is what the source does for admission: pending (no verified
	// bundle yet: every image is denied), enforcing, "enforcing, expired"
	// (onExpiry keep) or deny-all (expired with onExpiry deny-all, or a
	// spec never usable).
	// +optional
	State string `json:"state,omitempty"`
	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Applied is the last verified bundle; absent while pending. While the
	// state is deny-all it is not enforced.
	// +optional
	Applied *AppliedBundle `json:"applied,omitempty"`
	// LastFailure is the last refused sync's reason and message.
	// +optional
	LastFailure string `json:"lastFailure,omitempty"`
	// LastHandledReconcileAt is the last reconcile.fluxcd.io/requestedAt
	// value handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// PolicySource is a source of policy bundles: a TUF repository, an
// environment and a pinned root.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ps
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Env",type=string,JSONPath=`.spec.env`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Version",type=integer,JSONPath=`.status.applied.version`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PolicySource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PolicySourceSpec   `json:"spec,omitempty"`
	Status PolicySourceStatus `json:"status,omitempty"`
}

// GetConditions returns the status conditions (fluxcd/pkg/runtime).
func (p *PolicySource) GetConditions() []metav1.Condition { return p.Status.Conditions }

// SetConditions sets the status conditions (fluxcd/pkg/runtime).
func (p *PolicySource) SetConditions(c []metav1.Condition) { p.Status.Conditions = c }

// PolicySourceList is a list of PolicySources.
//
// +kubebuilder:object:root=true
type PolicySourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PolicySource `json:"items"`
}

// AddToScheme registers the types.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &PolicySource{}, &PolicySourceList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
