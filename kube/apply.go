package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// FieldManager is who foldup's server-side applies are made by.
const FieldManager = "foldup"

// ApplyOptions say how Apply and Delete talk to the cluster.
type ApplyOptions struct {
	// DryRun sends everything with dryRun=All: the API server admits and
	// validates each object, and keeps none. The Namespace is made for
	// real, since nothing can be admitted into a namespace that is not.
	DryRun bool
	// Out, if set, gets a line per object.
	Out io.Writer
}

// RESTConfig is the cluster of a kubeconfig: path (empty: KUBECONFIG,
// else ~/.kube/config) and context (empty: its current one).
func RESTConfig(path, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

type cluster struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

func connect(cfg *rest.Config) (*cluster, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &cluster{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

func (c *cluster) resource(o Object) (dynamic.ResourceInterface, error) {
	gvk := o.GetObjectKind().GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, &noKindError{fmt.Sprintf("%s %s: the cluster has no %s (%s): is %s installed?", gvk.Kind, o.GetName(), gvk.Kind, gvk.GroupVersion(), provider(gvk.Group)), err}
		}
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.dyn.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	return c.dyn.Resource(m.Resource), nil
}

// noKindError: the cluster does not know an object's kind.
type noKindError struct {
	msg string
	err error
}

func (e *noKindError) Error() string { return e.msg }
func (e *noKindError) Unwrap() error { return e.err }

func provider(group string) string {
	switch group {
	case "kubevirt.io":
		return "KubeVirt"
	case "k8s.cni.cncf.io":
		return "Multus"
	case "cdi.kubevirt.io":
		return "CDI"
	}
	return "its provider"
}

// Apply server-side applies the objects in order, as FieldManager, with
// strict field validation: a field the server does not know is an error.
// An object refused does not stop the others (its error is returned with
// theirs); a Job whose pod template changed, which Kubernetes keeps
// immutable, is deleted and made again, as compose recreates a changed
// container. Objects the project no longer has are not pruned: kube
// delete with the old file removes them.
func Apply(ctx context.Context, cfg *rest.Config, objs []Object, o ApplyOptions) error {
	c, err := connect(cfg)
	if err != nil {
		return err
	}
	var errs []error
	for _, obj := range objs {
		ri, err := c.resource(obj)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		data, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		opts := metav1.PatchOptions{FieldManager: FieldManager, Force: ptrTo(true), FieldValidation: "Strict"}
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		if o.DryRun && kind != "Namespace" {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		_, err = ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, opts)
		if err != nil && kind == "Job" && apierrors.IsInvalid(err) && strings.Contains(err.Error(), "immutable") && !o.DryRun {
			err = recreate(ctx, ri, obj.GetName(), data, opts)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", kind, obj.GetName(), err))
			continue
		}
		if o.Out != nil {
			verb := "applied"
			if len(opts.DryRun) > 0 {
				verb = "applied (server dry run)"
			}
			fmt.Fprintf(o.Out, "%s %s %s\n", kind, obj.GetName(), verb)
		}
	}
	return errors.Join(errs...)
}

// recreate deletes an object (its dependents go after it, by the
// cluster's garbage collector), waits until it is gone, and applies it
// again.
func recreate(ctx context.Context, ri dynamic.ResourceInterface, name string, data []byte, opts metav1.PatchOptions) error {
	if err := ri.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: ptrTo(metav1.DeletePropagationBackground)}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := ri.Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still there two minutes after its deletion, to be made again")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	_, err := ri.Patch(ctx, name, types.ApplyPatchType, data, opts)
	return err
}

// Delete deletes the objects, the last applied first, and the namespace
// last; what is gone already is no error. Objects that others own (a
// Deployment's pods, a VM's instance) go with their owners, by the
// cluster's garbage collector.
func Delete(ctx context.Context, cfg *rest.Config, objs []Object, o ApplyOptions) error {
	c, err := connect(cfg)
	if err != nil {
		return err
	}
	var errs []error
	for _, obj := range slices.Backward(objs) {
		ri, err := c.resource(obj)
		if err != nil {
			var nk *noKindError
			if errors.As(err, &nk) {
				continue // no such kind here: nothing of it to delete
			}
			errs = append(errs, err)
			continue
		}
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		opts := metav1.DeleteOptions{PropagationPolicy: ptrTo(metav1.DeletePropagationBackground)}
		if o.DryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		err = ri.Delete(ctx, obj.GetName(), opts)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("%s %s: %w", kind, obj.GetName(), err))
			continue
		}
		if o.Out != nil {
			fmt.Fprintf(o.Out, "%s %s deleted\n", kind, obj.GetName())
		}
	}
	return errors.Join(errs...)
}

// Exists reports which of the objects the cluster has.
func Exists(ctx context.Context, cfg *rest.Config, objs []Object) (map[string]bool, error) {
	c, err := connect(cfg)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, obj := range objs {
		ri, err := c.resource(obj)
		if err != nil {
			return nil, err
		}
		got, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
		key := obj.GetObjectKind().GroupVersionKind().Kind + "/" + obj.GetName()
		switch {
		case apierrors.IsNotFound(err):
			out[key] = false
		case err != nil:
			return nil, err
		default:
			// A namespace being deleted is going: its controller
			// finishes it.
			out[key] = got.GetDeletionTimestamp() == nil
		}
	}
	return out, nil
}

func ptrTo[T any](v T) *T { return &v }

// WaitReady waits until the API server at cfg answers /readyz.
func WaitReady(ctx context.Context, cfg *rest.Config) error {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	for {
		body, err := dc.RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && string(body) == "ok" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("API server not ready: %v (%s)", err, body)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
