package admission

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"ward.dev/ward/policies"
)

// SecretFunc reads the data of a Secret a policy names (policy-
// controller's key.secretRef and keyless.ca-cert.secretRef), from the
// controller's namespace.
type SecretFunc func(ctx context.Context, name string) (map[string][]byte, error)

// WithSecrets sets how Secrets named by policies are read. Without it, an
// authority that names a Secret fails: nothing can read it.
func WithSecrets(f SecretFunc) DeciderOption { return func(d *Decider) { d.secrets = f } }

// SecretTTL is how long a Secret read for a policy is used before it is
// read again: a rotated key is in force within it.
const SecretTTL = 10 * time.Second

// SecretReader reads Secrets of namespace through client, each at most
// once per SecretTTL.
func SecretReader(client kubernetes.Interface, namespace string) SecretFunc {
	type entry struct {
		data map[string][]byte
		err  error
		at   time.Time
	}
	var mu sync.Mutex
	cache := map[string]entry{}
	return func(ctx context.Context, name string) (map[string][]byte, error) {
		mu.Lock()
		e, ok := cache[name]
		mu.Unlock()
		if ok && time.Since(e.at) < SecretTTL {
			return e.data, e.err
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keychainTimeout)
		defer cancel()
		s, err := client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			e = entry{err: fmt.Errorf("Secret %s/%s not found", namespace, name), at: time.Now()}
		case err != nil:
			// Not remembered: the next request asks again.
			return nil, fmt.Errorf("failed to read Secret %s/%s: %w", namespace, name, err)
		default:
			e = entry{data: s.Data, at: time.Now()}
		}
		mu.Lock()
		cache[name] = e
		mu.Unlock()
		return e.data, e.err
	}
}

// withSecret returns the authority with the key, CA certificates or
// Notation trust store of the Secret it names; a is returned as is when it
// names none.
func (d *Decider) withSecret(ctx context.Context, a *policies.CompiledAuthority) (*policies.CompiledAuthority, error) {
	name := a.SecretRef()
	if name == "" {
		return a, nil
	}
	if d.secrets == nil {
		return nil, fmt.Errorf("the key, CA certificates or trust store are in Secret %s, and nothing here reads Secrets (ward check reads those given with -f)", name)
	}
	data, err := d.secrets(ctx, name)
	if err != nil {
		return nil, err
	}
	return a.WithSecret(data)
}
