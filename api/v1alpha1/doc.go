// Package v1alpha1 holds ward's Kubernetes API, group ward.dev: the
// cluster-scoped PolicySource, which says where a TUF repository of policy
// bundles lives, which environment to enforce and which root to pin. The
// same spec, in a config file, drives `ward serve --config` without a
// cluster.
//
// +kubebuilder:object:generate=true
// +groupName=ward.dev
package v1alpha1
