package incluster

import (
	"context"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bulkhead-mesh/bulkhead/internal/provision"
)

// DevKeySecret is where a development cluster keeps its development key
// (key, account): made by the dev-key Job of the local and kind overlays,
// read by `make cluster-up` and `make kind-up`. A production deployment has
// no such Job.
const DevKeySecret = "dev-api-key"

// DevKey makes sure the development account and an admin key exist, as
// the operator over the mesh, and keeps them in DevKeySecret.
func DevKey(ctx context.Context, log *slog.Logger, cs kubernetes.Interface, namespace string, op provision.MeshClient) error {
	var account, key string
	s, err := cs.CoreV1().Secrets(namespace).Get(ctx, DevKeySecret, getOpts)
	exists := err == nil
	switch {
	case exists:
		account, key = string(s.Data["account"]), string(s.Data["key"])
	case !apierrors.IsNotFound(err):
		return err
	}
	var newAccount, newKey string
	if err := retry(ctx, log, "users and auth", func(ctx context.Context) error {
		var err error
		newAccount, newKey, err = provision.DevKey(ctx, op, account, key, "dev (cluster)")
		return err
	}); err != nil {
		return err
	}
	if newKey == key && newAccount == account {
		log.Info("the development key still works", "secret", DevKeySecret)
		return nil
	}
	data := map[string][]byte{"account": []byte(newAccount), "key": []byte(newKey)}
	if exists {
		s.Data = data
		_, err = cs.CoreV1().Secrets(namespace).Update(ctx, s, metav1.UpdateOptions{})
	} else {
		_, err = cs.CoreV1().Secrets(namespace).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: DevKeySecret, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/part-of": "bulkhead"}},
			Data:       data,
		}, metav1.CreateOptions{})
	}
	if err != nil {
		return err
	}
	log.Info("made the development key", "secret", DevKeySecret, "account", newAccount)
	return nil
}
