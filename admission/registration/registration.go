// Package registration builds the Validating and Mutating webhook
// configurations that register ward with an API server, as deploy/ installs
// them: every workload kind, failurePolicy Fail, some namespaces excluded.
package registration

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ward.dev/ward/admission"
)

// Rules are the resources ward decides on.
func Rules() []admissionregistrationv1.RuleWithOperations {
	ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	rule := func(group string, resources ...string) admissionregistrationv1.RuleWithOperations {
		return admissionregistrationv1.RuleWithOperations{Operations: ops,
			Rule: admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{"v1"}, Resources: resources}}
	}
	return []admissionregistrationv1.RuleWithOperations{
		rule("", "pods", "pods/ephemeralcontainers", "replicationcontrollers"),
		rule("apps", "deployments", "replicasets", "statefulsets", "daemonsets"),
		rule("batch", "jobs", "cronjobs"),
	}
}

// ForURL registers a webhook served at https://addr with the CA ca, for
// every namespace but excluded.
func ForURL(name, addr string, ca []byte, excluded ...string) (*admissionregistrationv1.ValidatingWebhookConfiguration, *admissionregistrationv1.MutatingWebhookConfiguration) {
	fail, none, timeout := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone, int32(10)
	reinvoke := admissionregistrationv1.IfNeededReinvocationPolicy
	var nsSel *metav1.LabelSelector
	if len(excluded) > 0 {
		nsSel = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: excluded}}}
	}
	client := func(path string) admissionregistrationv1.WebhookClientConfig {
		u := "https://" + addr + path
		return admissionregistrationv1.WebhookClientConfig{URL: &u, CABundle: ca}
	}
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}, Webhooks: []admissionregistrationv1.ValidatingWebhook{{
		Name: "images.ward.dev", ClientConfig: client(admission.PathValidate), Rules: Rules(), FailurePolicy: &fail, SideEffects: &none,
		AdmissionReviewVersions: []string{"v1"}, TimeoutSeconds: &timeout, NamespaceSelector: nsSel,
	}}}
	m := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}, Webhooks: []admissionregistrationv1.MutatingWebhook{{
		Name: "pin.ward.dev", ClientConfig: client(admission.PathMutate), Rules: Rules(), FailurePolicy: &fail, SideEffects: &none,
		AdmissionReviewVersions: []string{"v1"}, TimeoutSeconds: &timeout, NamespaceSelector: nsSel, ReinvocationPolicy: &reinvoke,
	}}}
	return v, m
}
