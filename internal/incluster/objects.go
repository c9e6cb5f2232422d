// Package incluster is what the platform does for itself inside a
// Kubernetes cluster, where no operator's machine holds its secrets: the
// bootstrap Job (the stores' administrative credentials made once as
// Secrets, Vault's TLS, Vault initialised and unsealed, then the same
// provisioning as `bulkhead up`), the unsealer beside Vault, the certificate
// agent beside programs that cannot read Vault, the wait for a Vault role,
// and the development key. Every secret is generated in the cluster; none is
// in a manifest.
package incluster

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

var getOpts = metav1.GetOptions{}

// managedLabels mark the objects the bootstrap makes.
func managedLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/part-of": "bulkhead", "app.kubernetes.io/managed-by": "bulkhead-bootstrap"}
}

// Client is the in-cluster API client of the pod's service account.
func Client() (kubernetes.Interface, error) {
	conf, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("not in a cluster (no service account token or KUBERNETES_SERVICE_HOST): %w", err)
	}
	return kubernetes.NewForConfig(conf)
}

// ensureSecret returns the Secret's data, creating it with make's data
// when it does not exist yet. An existing Secret is never changed: what it
// holds (a password a server was initialised with) must stay.
func ensureSecret(ctx context.Context, cs kubernetes.Interface, namespace, name string, make func() (map[string][]byte, error)) (map[string][]byte, bool, error) {
	s, err := cs.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return s.Data, false, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, false, fmt.Errorf("secret %s/%s: %w", namespace, name, err)
	}
	data, err := make()
	if err != nil {
		return nil, false, err
	}
	_, err = cs.CoreV1().Secrets(namespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: managedLabels()},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Another run made it meanwhile: its data wins.
		return ensureSecret(ctx, cs, namespace, name, make)
	}
	if err != nil {
		return nil, false, fmt.Errorf("create secret %s/%s: %w", namespace, name, err)
	}
	return data, true, nil
}

// putSecret creates the Secret or replaces its data.
func putSecret(ctx context.Context, cs kubernetes.Interface, namespace, name string, data map[string][]byte) error {
	cur, err := cs.CoreV1().Secrets(namespace).Get(ctx, name, getOpts)
	if apierrors.IsNotFound(err) {
		_, err = cs.CoreV1().Secrets(namespace).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: managedLabels()},
			Type:       corev1.SecretTypeOpaque,
			Data:       data,
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return fmt.Errorf("secret %s/%s: %w", namespace, name, err)
	}
	cur.Data = data
	if _, err := cs.CoreV1().Secrets(namespace).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update secret %s/%s: %w", namespace, name, err)
	}
	return nil
}

// ensureConfigMap creates or updates a ConfigMap (public data: a CA
// certificate).
func ensureConfigMap(ctx context.Context, cs kubernetes.Interface, namespace, name string, data map[string]string) error {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: managedLabels()},
		Data:       data,
	}
	_, err := cs.CoreV1().ConfigMaps(namespace).Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, err := cs.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("configmap %s/%s: %w", namespace, name, err)
		}
		cur.Data = data
		_, err = cs.CoreV1().ConfigMaps(namespace).Update(ctx, cur, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("update configmap %s/%s: %w", namespace, name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("create configmap %s/%s: %w", namespace, name, err)
	}
	return nil
}
