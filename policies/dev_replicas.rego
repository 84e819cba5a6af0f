# At most parameters.maxReplicas (2 when not given) replicas per version for
# a ModelService in the dev environment (its `environment` label).
package autoglm.dev_replicas

limit := object.get(input.parameters, "maxReplicas", 2)

spec := input.resource.spec

replicas := spec.replicas if {
	spec.replicas
} else := spec.autoscaling.maxReplicas if {
	spec.autoscaling
} else := 1

deny contains msg if {
	input.environment == "dev"
	replicas > limit
	msg := sprintf("service %s is in dev, where a version may have at most %d replicas; it asks for %d", [input.name, limit, replicas])
}
