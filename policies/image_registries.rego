# Image registry allow-list: a ModelService that runs a container image
# takes it from one of parameters.registries (e.g. "ghcr.io/acme").
package autoglm.image_registries

registries := object.get(input.parameters, "registries", [])

deny contains msg if {
	image := input.resource.spec.runtime.image.image
	not allowed(image)
	msg := sprintf("image %s of service %s is not from an allowed registry (%s)", [image, input.name, concat(", ", registries)])
}

allowed(image) if {
	some registry in registries
	startswith(image, concat("", [trim_suffix(registry, "/"), "/"]))
}
