package autoglm.resource_limits_test

import data.autoglm.resource_limits

service(resources) := {"kind": "ModelService", "name": "chat", "resource": {"spec": {"model": "m", "resources": resources}}}

test_limits_set_pass if {
	count(resource_limits.deny) == 0 with input as service({"cpu": "2", "memory": "4Gi"})
}

test_missing_memory_is_denied if {
	resource_limits.deny == {"service chat must set spec.resources.memory"} with input as service({"cpu": "2"})
}

test_no_resources_is_denied_twice if {
	count(resource_limits.deny) == 2 with input as {"kind": "ModelService", "name": "chat", "resource": {"spec": {"model": "m"}}}
}
