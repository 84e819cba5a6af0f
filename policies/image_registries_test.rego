package autoglm.image_registries_test

import data.autoglm.image_registries

service(runtime) := {"name": "chat", "resource": {"spec": {"runtime": runtime}}, "parameters": {"registries": ["ghcr.io/acme"]}}

test_an_allowed_image_passes if {
	count(image_registries.deny) == 0 with input as service({"image": {"image": "ghcr.io/acme/server:1.2", "port": 8000}})
}

test_another_registry_is_denied if {
	count(image_registries.deny) == 1 with input as service({"image": {"image": "docker.io/acme/server:1.2", "port": 8000}})
}

test_a_prefix_is_not_a_registry if {
	count(image_registries.deny) == 1 with input as service({"image": {"image": "ghcr.io/acme-evil/server:1", "port": 8000}})
}

test_other_runtimes_are_not_asked if {
	count(image_registries.deny) == 0 with input as service({"builtin": {}})
}
