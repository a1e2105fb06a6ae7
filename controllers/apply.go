package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldOwner is the server-side apply field manager of everything the operator writes.
const FieldOwner = "kubemail-operator"

// errNotOwned is returned when a child's name is taken by an object the MailDomain does not
// control: the operator never adopts or overwrites it.
var errNotOwned = errors.New("exists and is not controlled by this MailDomain")

// applyChild makes the child named like desired match desired, with server-side apply, unless
// the object in the cache already does: fields desired sets are compared with what the API
// server holds (which has defaults filled in), so a steady state makes no write. It reports
// whether it wrote. current is an empty object of desired's type; it is left holding the object
// as the API server has it.
func applyChild(ctx context.Context, c client.Client, owner metav1.Object, desired, current client.Object) (bool, error) {
	err := c.Get(ctx, client.ObjectKeyFromObject(desired), current)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, err
	default:
		if ref := metav1.GetControllerOf(current); ref == nil || ref.UID != owner.GetUID() {
			return false, fmt.Errorf("%T %s %w", desired, desired.GetName(), errNotOwned)
		}
		if upToDate(desired, current) {
			return false, nil
		}
	}
	u, err := toApplyObject(desired)
	if err != nil {
		return false, err
	}
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return false, err
	}
	// The caller gets the object as the API server now has it (the cache has not seen it yet).
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, current); err != nil {
		return true, fmt.Errorf("reading back %T %s: %w", desired, desired.GetName(), err)
	}
	return true, nil
}

// toApplyObject renders a typed object as the JSON the API would send, without status, so the
// apply names exactly the fields the builder set (omitempty drops the rest).
func toApplyObject(obj client.Object) (*unstructured.Unstructured, error) {
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// upToDate reports whether current already has every label, annotation and content field that
// desired sets.
func upToDate(desired, current client.Object) bool {
	if !subset(desired.GetLabels(), current.GetLabels()) || !subset(desired.GetAnnotations(), current.GetAnnotations()) {
		return false
	}
	// A label or annotation we applied before and no longer want must go: only an apply
	// without it removes it (server-side apply drops fields their manager stops naming).
	for _, m := range []struct {
		field   string
		desired map[string]string
	}{{"f:labels", desired.GetLabels()}, {"f:annotations", desired.GetAnnotations()}} {
		for _, key := range appliedKeys(current, m.field) {
			if _, ok := m.desired[key]; !ok {
				return false
			}
		}
	}
	switch d := desired.(type) {
	case *corev1.ConfigMap:
		cur := current.(*corev1.ConfigMap)
		return equality.Semantic.DeepEqual(d.Data, cur.Data) && equality.Semantic.DeepEqual(d.BinaryData, cur.BinaryData)
	case *corev1.Secret:
		cur := current.(*corev1.Secret)
		if len(d.Data) != len(cur.Data) {
			return false
		}
		for k, v := range d.Data {
			if !bytes.Equal(v, cur.Data[k]) {
				return false
			}
		}
		return d.Type == cur.Type
	case *corev1.Service:
		cur := current.(*corev1.Service)
		spec := d.Spec.DeepCopy()
		// Node ports are allocated by the API server for LoadBalancer and NodePort Services.
		for i := range spec.Ports {
			for _, p := range cur.Spec.Ports {
				if p.Name == spec.Ports[i].Name && spec.Ports[i].NodePort == 0 {
					spec.Ports[i].NodePort = p.NodePort
				}
			}
		}
		return equality.Semantic.DeepDerivative(*spec, cur.Spec)
	case *appsv1.StatefulSet:
		cur := current.(*appsv1.StatefulSet)
		return equality.Semantic.DeepDerivative(d.Spec, cur.Spec)
	}
	return false
}

// appliedKeys lists the metadata labels or annotations (field "f:labels" or "f:annotations")
// that our field manager owns in obj through server-side apply.
func appliedKeys(obj client.Object, field string) []string {
	var keys []string
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager != FieldOwner || mf.Operation != metav1.ManagedFieldsOperationApply || mf.FieldsV1 == nil {
			continue
		}
		var fields map[string]map[string]map[string]any
		if json.Unmarshal(mf.FieldsV1.GetRawBytes(), &fields) != nil {
			continue
		}
		for k := range fields["f:metadata"][field] {
			if key, ok := strings.CutPrefix(k, "f:"); ok {
				keys = append(keys, key)
			}
		}
	}
	return keys
}

func subset(want, have map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}
