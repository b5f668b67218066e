package main

import (
	"fmt"

	"github.com/foldup/foldup/executor"
	"github.com/foldup/foldup/kube"
	"github.com/foldup/foldup/planner"
	"github.com/foldup/foldup/spec"
	"github.com/spf13/cobra"
)

func newKubeCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "kube [-o DIR|-]",
		Short: "Write the project as Kubernetes objects, for KubeVirt and Multus",
		Long: `kube writes the project as Kubernetes objects, from its plan, so that the
addresses, MACs, ports and DNS records are the ones foldup up uses: a
Namespace; a NetworkAttachmentDefinition for each network (Multus: the
bridge CNI with static IPAM by default, macvlan or OVN-Kubernetes' layer-2
network as the network's x-foldup.kube says; and one without IPAM for
VMs); a Deployment for each service replica, with its planned addresses
and MAC (a Job for restart: "no" or on-failure); a KubeVirt VirtualMachine
for each VM (kernel boot from an image foldup kube build makes, or a disk),
with its planned MACs, cloud-init and readiness probe; foldup's DNS, DHCP
and RA server as a Deployment on every network at the gateway addresses,
fed the plan from a ConfigMap; a Service for published ports; a
PersistentVolumeClaim for each named volume; NetworkPolicies for members
of isolated networks. What has no faithful Kubernetes equivalent is
dropped with a warning saying where it is written and what to use instead.

The objects go to the standard output as one YAML stream (-o -, the
default), or to DIR a file each, in the order they apply in.`,
		Example: `  foldup kube > project.yaml
  foldup kube -o k8s/ && kubectl apply -f k8s/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := g.kubeObjects(cmd)
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				return kube.Write(cmd.OutOrStdout(), res.Objects)
			}
			return kube.WriteDir(output, res.Objects)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "-", `a directory to write a file an object into, or "-" for the standard output`)
	cmd.AddCommand(newKubeApplyCmd(g, rf, "apply"), newKubeApplyCmd(g, rf, "delete"), newKubeBuildCmd(g, rf))
	return cmd
}

// newKubeApplyCmd is kube apply and kube delete: the objects kube writes,
// sent to the cluster of a kubeconfig.
func newKubeApplyCmd(g *globalFlags, rf *runtimeFlags, verb string) *cobra.Command {
	var kubeconfig, context string
	cmd := &cobra.Command{
		Use:  verb,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := g.kubeObjects(cmd)
			if err != nil {
				return err
			}
			cfg, err := kube.RESTConfig(kubeconfig, context)
			if err != nil {
				return err
			}
			o := kube.ApplyOptions{DryRun: rf.dryRun, Out: cmd.OutOrStdout()}
			if verb == "apply" {
				return kube.Apply(cmd.Context(), cfg, res.Objects, o)
			}
			return kube.Delete(cmd.Context(), cfg, res.Objects, o)
		},
	}
	if verb == "apply" {
		cmd.Short = "Server-side apply the project's Kubernetes objects to a cluster"
		cmd.Long = `kube apply sends the objects foldup kube writes to the cluster of a
kubeconfig (--kubeconfig, else KUBECONFIG, else ~/.kube/config; its
current context unless --context), in order, by server-side apply as the
field manager foldup, with strict field validation: a field the API
server does not know is an error, not dropped. --dry-run has the server
admit and validate every object and keep none (the Namespace excepted:
nothing is admitted into a namespace that does not exist). The cluster
needs KubeVirt for VMs, Multus for the networks, and CDI for disks from
URLs.`
		cmd.Example = `  foldup kube apply --dry-run
  KUBECONFIG=~/.kube/lab foldup kube apply`
	} else {
		cmd.Short = "Delete the project's Kubernetes objects from a cluster"
		cmd.Long = `kube delete deletes the objects foldup kube writes from the cluster of a
kubeconfig, the last applied first and the namespace last; what is gone
already is no error. Pods, VM instances and DataVolumes go with their
owners.`
		cmd.Example = `  foldup kube delete`
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	f.StringVar(&context, "context", "", "the kubeconfig's context (default: its current one)")
	return cmd
}

func newKubeBuildCmd(g *globalFlags, rf *runtimeFlags) *cobra.Command {
	var push bool
	cmd := &cobra.Command{
		Use:   "build [--push]",
		Short: "Build the container images foldup kube names for the VMs",
		Long: `kube build builds, with the Docker engine, the images the VirtualMachines
foldup kube writes boot from: for a VM with kernel:, an image holding its
kernel at /boot/vmlinuz and its initrd at /boot/initrd.img (KubeVirt's
kernelBoot container); for a VM with a local disk image, an image holding
the disk under /disk (a containerDisk). Each is FROM scratch, its files
owned by 107:107 (KubeVirt's qemu), tagged in x-foldup.kube.registry
(default localhost:5000) with a hash of the VM's configuration and its
files' contents, as foldup kube names it. --push pushes them there. A disk from a URL needs no image: CDI
imports it.`,
		Example: `  foldup kube build --push && foldup kube apply`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := spec.Load(cmd.Context(), g.options(cmd.InOrStdin()))
			if err != nil {
				return err
			}
			plan, err := planner.Compute(p, planner.Observed{}, planner.Intent{})
			if err != nil {
				return err
			}
			o, done := rf.options(cmd.ErrOrStderr())
			defer done()
			x := executor.New(o)
			defer x.Close()
			return x.KubeBuild(cmd.Context(), p.Name, kube.Images(p, plan), push)
		},
	}
	cmd.Flags().BoolVar(&push, "push", false, "push the images to their registry")
	return cmd
}

// kubeObjects loads and plans the project, as up would on an empty host,
// and writes it as Kubernetes objects; the warnings go to stderr.
func (g *globalFlags) kubeObjects(cmd *cobra.Command) (*kube.Result, error) {
	o := g.options(cmd.InOrStdin())
	// The kernels, initrds and disks are the images' (foldup kube build),
	// not needed here; cloud-init's files are read.
	o.NameOnly = true
	p, err := spec.Load(cmd.Context(), o)
	if err != nil {
		return nil, err
	}
	plan, err := planner.Compute(p, planner.Observed{}, planner.Intent{})
	if err != nil {
		return nil, err
	}
	res, err := kube.Build(p, plan, kube.Options{Version: version})
	if err != nil {
		return nil, err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+w.String())
	}
	return res, nil
}
