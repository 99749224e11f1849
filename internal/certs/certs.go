// Package certs gives the in-cluster webhook its serving certificate and
// keeps it fresh: a CA and a serving certificate for the webhook Service
// kept in a Secret of ward's namespace, rotated well before they expire,
// the CA written into the webhook configurations' caBundle. Every replica
// runs it; concurrent writers resolve through the API server's optimistic
// concurrency. Replicas serve whatever the Secret holds, reloaded as it
// changes.
package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Lifetimes and the rotation margin.
const (
	CALifetime      = 10 * 365 * 24 * time.Hour
	ServingLifetime = 365 * 24 * time.Hour
	RenewBefore     = 30 * 24 * time.Hour
	checkEvery      = time.Minute
)

// Manager keeps the serving certificate. Zero fields are not usable; set
// all but Now and Log.
type Manager struct {
	// Client writes the Secret and the webhook configurations.
	Client client.Client
	// Reader reads them, uncached (RBAC grants no cluster-wide watch on
	// Secrets or webhook configurations).
	Reader    client.Reader
	Namespace string
	// Secret holds ca.crt, tls.crt and tls.key.
	Secret string
	// Service is the webhook Service; the certificate is for its DNS
	// names in Namespace.
	Service string
	// WebhookConfig names the Validating and Mutating webhook
	// configurations whose caBundle is kept.
	WebhookConfig string
	Now           func() time.Time
	Log           logr.Logger

	current atomic.Pointer[tls.Certificate]
}

// GetCertificate serves the current certificate (tls.Config).
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.current.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no serving certificate yet")
}

// TLSConfig is a server configuration that serves the managed certificate.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: m.GetCertificate}
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// DNSNames are the names the serving certificate covers.
func (m *Manager) DNSNames() []string {
	s, ns := m.Service, m.Namespace
	return []string{s, s + "." + ns, s + "." + ns + ".svc", s + "." + ns + ".svc.cluster.local"}
}

// Ensure makes or rotates the Secret when needed, loads its certificate,
// and writes the CA into the webhook configurations.
func (m *Manager) Ensure(ctx context.Context) error {
	key := types.NamespacedName{Namespace: m.Namespace, Name: m.Secret}
	var s corev1.Secret
	err := m.Reader.Get(ctx, key, &s)
	switch {
	case apierrors.IsNotFound(err):
		s = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Secret, Labels: map[string]string{"app.kubernetes.io/name": "ward"}}, Type: corev1.SecretTypeTLS}
		s.Data, err = m.issue(nil)
		if err != nil {
			return err
		}
		if err := m.Client.Create(ctx, &s); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("failed to create Secret %s: %w", key, err)
		}
		if err := m.Reader.Get(ctx, key, &s); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("failed to read Secret %s: %w", key, err)
	}
	if reason := m.needsRenewal(s.Data); reason != "" {
		m.Log.Info("renewing the webhook serving certificate", "reason", reason)
		data, err := m.issue(s.Data)
		if err != nil {
			return err
		}
		s.Data = data
		if err := m.Client.Update(ctx, &s); err != nil {
			if apierrors.IsConflict(err) {
				return m.Ensure(ctx) // another replica renewed it first
			}
			return fmt.Errorf("failed to update Secret %s: %w", key, err)
		}
	}
	c, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return fmt.Errorf("Secret %s holds no usable certificate: %w", key, err)
	}
	m.current.Store(&c)
	return m.patchCABundle(ctx, s.Data["ca.crt"])
}

// Run keeps the certificate fresh until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(checkEvery)
	defer t.Stop()
	for {
		if err := m.Ensure(ctx); err != nil && ctx.Err() == nil {
			m.Log.Error(err, "webhook serving certificate")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// needsRenewal says why the Secret's certificates must be made anew, or "".
func (m *Manager) needsRenewal(data map[string][]byte) string {
	ca, err := parseCert(data["ca.crt"])
	if err != nil {
		return "no CA"
	}
	leaf, err := parseCert(data[corev1.TLSCertKey])
	if err != nil {
		return "no serving certificate"
	}
	now := m.now()
	switch {
	case now.Add(RenewBefore).After(ca.NotAfter):
		return "the CA expires soon"
	case now.Add(RenewBefore).After(leaf.NotAfter):
		return "the serving certificate expires soon"
	case leaf.CheckSignatureFrom(ca) != nil:
		return "the serving certificate is not signed by the CA"
	}
	for _, n := range m.DNSNames() {
		if leaf.VerifyHostname(n) != nil {
			return "the serving certificate does not cover " + n
		}
	}
	return ""
}

// issue makes a serving certificate, and a CA when the old one cannot be
// kept (missing or expiring). A kept CA keeps the caBundle valid through
// the rotation of the serving certificate.
func (m *Manager) issue(old map[string][]byte) (map[string][]byte, error) {
	now := m.now()
	var caCert *x509.Certificate
	var caKey *ecdsa.PrivateKey
	if c, err := parseCert(old["ca.crt"]); err == nil && now.Add(RenewBefore).Before(c.NotAfter) {
		if k, err := parseKey(old["ca.key"]); err == nil {
			caCert, caKey = c, k
		}
	}
	caPEM := old["ca.crt"]
	caKeyPEM := old["ca.key"]
	if caCert == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "ward webhook CA"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(CALifetime),
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		if err != nil {
			return nil, err
		}
		if caCert, err = x509.ParseCertificate(der); err != nil {
			return nil, err
		}
		caKey = k
		caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		kd, _ := x509.MarshalECPrivateKey(k)
		caKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: m.DNSNames()[2]}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(ServingLifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSNames: m.DNSNames()}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, k.Public(), caKey)
	if err != nil {
		return nil, err
	}
	kd, _ := x509.MarshalECPrivateKey(k)
	return map[string][]byte{
		"ca.crt":                caPEM,
		"ca.key":                caKeyPEM,
		corev1.TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		corev1.TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}),
	}, nil
}

// patchCABundle writes the CA into every webhook of the configurations.
func (m *Manager) patchCABundle(ctx context.Context, ca []byte) error {
	key := types.NamespacedName{Name: m.WebhookConfig}
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := m.Reader.Get(ctx, key, &v); err == nil {
		before := v.DeepCopy()
		changed := false
		for i := range v.Webhooks {
			if !bytes.Equal(v.Webhooks[i].ClientConfig.CABundle, ca) {
				v.Webhooks[i].ClientConfig.CABundle, changed = ca, true
			}
		}
		if changed {
			if err := m.Client.Patch(ctx, &v, client.MergeFrom(before)); err != nil {
				return fmt.Errorf("failed to patch the caBundle of ValidatingWebhookConfiguration %s: %w", m.WebhookConfig, err)
			}
		}
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	var mw admissionregistrationv1.MutatingWebhookConfiguration
	if err := m.Reader.Get(ctx, key, &mw); err == nil {
		before := mw.DeepCopy()
		changed := false
		for i := range mw.Webhooks {
			if !bytes.Equal(mw.Webhooks[i].ClientConfig.CABundle, ca) {
				mw.Webhooks[i].ClientConfig.CABundle, changed = ca, true
			}
		}
		if changed {
			if err := m.Client.Patch(ctx, &mw, client.MergeFrom(before)); err != nil {
				return fmt.Errorf("failed to patch the caBundle of MutatingWebhookConfiguration %s: %w", m.WebhookConfig, err)
			}
		}
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

func parseCert(p []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("no PEM")
	}
	return x509.ParseCertificate(b.Bytes)
}

func parseKey(p []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("no PEM")
	}
	return x509.ParseECPrivateKey(b.Bytes)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}
