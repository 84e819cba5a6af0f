# A GPU quota per tenant: the GPUs a ModelService may hold at its most
# (GPUs per replica x replicas per version x versions), with what the
# tenant's other services may hold (input.context.tenantGpus), stay within
# parameters.maxGpus.
package autoglm.gpu_quota

spec := input.resource.spec

gpus_per_replica := object.get(object.get(spec, "resources", {}), "gpu", 0)

replicas_per_version := spec.replicas if {
	spec.replicas
} else := spec.autoscaling.maxReplicas if {
	spec.autoscaling
} else := 1

versions := max([count(object.get(spec, "versions", [])), 1])

requested := (gpus_per_replica * replicas_per_version) * versions

in_use := object.get(object.get(input, "context", {}), "tenantGpus", 0)

deny contains msg if {
	limit := input.parameters.maxGpus
	requested > 0
	in_use + requested > limit
	msg := sprintf("service %s may hold %d GPUs and the tenant's other services %d: over the tenant's quota of %d (%d left)", [input.name, requested, in_use, limit, max([limit - in_use, 0])])
}
