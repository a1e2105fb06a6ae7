// Command provisioner is the e2e cluster's dynamic volume provisioner: for each PersistentVolumeClaim
// of its StorageClass (volumeBindingMode WaitForFirstConsumer) that the scheduler has given a node,
// it makes a directory under -dir and a `local` PersistentVolume on it, pre-bound to the claim;
// when such a volume is Released it removes the directory and the volume (reclaimPolicy Delete).
// A `local` volume, unlike a hostPath one, gets the pod's fsGroup, so the chart's non-root pods
// can write to it. It runs on the host next to the kubelet (hack/cluster/up.sh starts it).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	provisionerName = "kubemail.io/e2e-local"
	// Annotations of the PV controller and the scheduler (k8s.io/component-helpers).
	annStorageProvisioner = "volume.kubernetes.io/storage-provisioner"
	annSelectedNode       = "volume.kubernetes.io/selected-node"
	annProvisionedBy      = "pv.kubernetes.io/provisioned-by"
)

type provisioner struct {
	client       kubernetes.Interface
	dir, node    string
	storageClass string
	log          *slog.Logger
	pvcs         cache.Indexer
	pvs          cache.Indexer
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	dir := flag.String("dir", "", "directory the volumes are made in")
	node := flag.String("node", "", "the node's name (the volumes' node affinity)")
	sc := flag.String("storage-class", "", "the StorageClass served")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*kubeconfig, *dir, *node, *sc, logger); err != nil {
		logger.Error("Provisioner failed", "err", err)
		os.Exit(1)
	}
}

func run(kubeconfig, dir, node, sc string, logger *slog.Logger) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	factory := informers.NewSharedInformerFactory(client, 0)
	pvcInformer := factory.Core().V1().PersistentVolumeClaims().Informer()
	pvInformer := factory.Core().V1().PersistentVolumes().Informer()
	p := &provisioner{client: client, dir: dir, node: node, storageClass: sc, log: logger,
		pvcs: pvcInformer.GetIndexer(), pvs: pvInformer.GetIndexer()}
	// Any change wakes one sync of everything: a handful of objects in an e2e cluster.
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	if _, err := pvcInformer.AddEventHandler(h); err != nil {
		return err
	}
	if _, err := pvInformer.AddEventHandler(h); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	logger.Info("Provisioner started", "storageClass", sc, "dir", dir)
	// A failed API call is retried on the next event or after a few seconds.
	retry := time.NewTicker(3 * time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-retry.C:
		}
		p.sync(ctx)
	}
}

func (p *provisioner) sync(ctx context.Context) {
	for _, o := range p.pvcs.List() {
		pvc := o.(*corev1.PersistentVolumeClaim)
		if pvc.Spec.VolumeName != "" || pvc.Status.Phase != corev1.ClaimPending || pvc.DeletionTimestamp != nil ||
			pvc.Annotations[annStorageProvisioner] != provisionerName || pvc.Annotations[annSelectedNode] != p.node {
			continue
		}
		if err := p.provision(ctx, pvc); err != nil {
			p.log.Error("Provisioning failed", "pvc", pvc.Namespace+"/"+pvc.Name, "err", err)
		}
	}
	for _, o := range p.pvs.List() {
		pv := o.(*corev1.PersistentVolume)
		if pv.Annotations[annProvisionedBy] != provisionerName || pv.Status.Phase != corev1.VolumeReleased ||
			pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.DeletionTimestamp != nil {
			continue
		}
		if err := p.remove(ctx, pv); err != nil {
			p.log.Error("Deleting a volume failed", "pv", pv.Name, "err", err)
		}
	}
}

func (p *provisioner) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	name := "pvc-" + string(pvc.UID)
	if _, exists, _ := p.pvs.GetByKey(name); exists {
		return nil // made; the PV controller has yet to bind it
	}
	path := filepath.Join(p.dir, name)
	// The kubelet gives a local volume the pod's fsGroup; until then only root may enter.
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	reclaim := corev1.PersistentVolumeReclaimDelete
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{annProvisionedBy: provisionerName}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              p.storageClass,
			VolumeMode:                    pvc.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: path}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{p.node},
				}},
			}}}},
		},
	}
	if _, err := p.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating PersistentVolume %s: %w", name, err)
	}
	p.log.Info("Provisioned a volume", "pvc", pvc.Namespace+"/"+pvc.Name, "pv", name, "path", path)
	return nil
}

func (p *provisioner) remove(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.Spec.Local == nil || filepath.Dir(pv.Spec.Local.Path) != filepath.Clean(p.dir) {
		return fmt.Errorf("volume path %v is not under %s", pv.Spec.Local, p.dir)
	}
	if err := os.RemoveAll(pv.Spec.Local.Path); err != nil {
		return err
	}
	err := p.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	p.log.Info("Deleted a released volume", "pv", pv.Name)
	return nil
}
