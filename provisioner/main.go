// Command provisioner is the local cluster's storage provisioner, run by the launcher as a host process.
//
// For each PersistentVolumeClaim of its StorageClass (volumeBindingMode WaitForFirstConsumer), once the
// scheduler has chosen a node, it makes a folder for the volume in that node's storage folder on this host
// (<root>/<node>/<volume>) and a local PersistentVolume pinned to that node. Data lives as long as the
// volume: a pod restarted on its node finds it again; when the claim is deleted (reclaim policy Delete) the
// folder goes with the volume.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

const hostnameLabel = "kubernetes.io/hostname"

type nodeLocal struct {
	root   string
	client kubernetes.Interface
}

func (p *nodeLocal) Provision(ctx context.Context, opts controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	if opts.SelectedNodeName == "" {
		return nil, controller.ProvisioningFinished, errors.New("no node chosen: the StorageClass must have volumeBindingMode WaitForFirstConsumer")
	}
	if opts.PVC.Spec.VolumeMode != nil && *opts.PVC.Spec.VolumeMode == v1.PersistentVolumeBlock {
		return nil, controller.ProvisioningFinished, errors.New("block volumes are not supported: use volumeMode Filesystem")
	}
	for _, mode := range opts.PVC.Spec.AccessModes {
		if mode == v1.ReadWriteMany || mode == v1.ReadOnlyMany {
			return nil, controller.ProvisioningFinished, fmt.Errorf("access mode %s is not supported: a node-local volume is ReadWriteOnce", mode)
		}
	}
	node, err := p.client.CoreV1().Nodes().Get(ctx, opts.SelectedNodeName, metav1.GetOptions{})
	if err != nil {
		return nil, controller.ProvisioningInBackground, fmt.Errorf("reading node %s: %w", opts.SelectedNodeName, err)
	}
	hostname := node.Labels[hostnameLabel]
	if hostname == "" {
		hostname = node.Name
	}
	dir := filepath.Join(p.root, node.Name, opts.PVName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, controller.ProvisioningInBackground, fmt.Errorf("making %s: %w", dir, err)
	}
	// any user of the pod may write (a pod running as non-root gets no fsGroup change on local volumes it
	// cannot own); the parent folders stay closed to other users of the host
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, controller.ProvisioningInBackground, fmt.Errorf("opening %s: %w", dir, err)
	}
	reclaim := v1.PersistentVolumeReclaimDelete
	if opts.StorageClass.ReclaimPolicy != nil {
		reclaim = *opts.StorageClass.ReclaimPolicy
	}
	filesystem := v1.PersistentVolumeFilesystem
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: opts.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   opts.PVC.Spec.AccessModes,
			VolumeMode:                    &filesystem,
			StorageClassName:              opts.StorageClass.Name,
			MountOptions:                  opts.StorageClass.MountOptions,
			Capacity:                      v1.ResourceList{v1.ResourceStorage: opts.PVC.Spec.Resources.Requests[v1.ResourceStorage]},
			PersistentVolumeSource:        v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: dir}},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{Key: hostnameLabel, Operator: v1.NodeSelectorOpIn, Values: []string{hostname}}},
			}}}},
		},
	}
	log.Printf("provisioned %s for %s/%s on node %s: %s", opts.PVName, opts.PVC.Namespace, opts.PVC.Name, node.Name, dir)
	return pv, controller.ProvisioningFinished, nil
}

func (p *nodeLocal) Delete(ctx context.Context, pv *v1.PersistentVolume) error {
	if pv.Spec.Local == nil {
		return &controller.IgnoredError{Reason: "not a local volume"}
	}
	dir := filepath.Clean(pv.Spec.Local.Path)
	rel, err := filepath.Rel(p.root, dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") || strings.Count(rel, string(filepath.Separator)) != 1 {
		return &controller.IgnoredError{Reason: fmt.Sprintf("%s is not a volume folder under %s", dir, p.root)}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	log.Printf("deleted %s: %s", pv.Name, dir)
	return nil
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the provisioner's identity")
	name := flag.String("name", "resilience-tests.io/node-local", "provisioner name the StorageClass names")
	root := flag.String("root", "", "folder holding <node>/<volume> folders")
	flag.Parse()
	if *kubeconfig == "" || *root == "" {
		log.Fatal("--kubeconfig and --root are required")
	}
	absRoot, err := filepath.Abs(*root)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(absRoot, 0o700); err != nil {
		log.Fatal(err)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Printf("provisioning %s volumes under %s", *name, absRoot)
	controller.NewProvisionController(ctx, client, *name, &nodeLocal{root: absRoot, client: client},
		controller.LeaderElection(false)).Run(ctx)
}
