// Package e2e runs ward behind a real kube-apiserver (built by
// hack/kube-assets.sh, run through controller-runtime's envtest): real
// ValidatingWebhookConfiguration and MutatingWebhookConfiguration objects
// with a CA bundle point the API server at ward's webhook over HTTPS, and
// the flows of DESIGN.md section 1 go through the API server with
// client-go.
package e2e
