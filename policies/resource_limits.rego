# Resource limits required: every replica of a ModelService states the CPU
# and memory it may use, so that quotas and schedulers can count it.
package autoglm.resource_limits

deny contains msg if {
	input.kind == "ModelService"
	not input.resource.spec.resources.cpu
	msg := sprintf("service %s must set spec.resources.cpu", [input.name])
}

deny contains msg if {
	input.kind == "ModelService"
	not input.resource.spec.resources.memory
	msg := sprintf("service %s must set spec.resources.memory", [input.name])
}
