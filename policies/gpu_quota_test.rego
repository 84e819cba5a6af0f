package autoglm.gpu_quota_test

import data.autoglm.gpu_quota

service(spec, in_use) := {"name": "chat", "resource": {"spec": spec}, "context": {"tenantGpus": in_use}, "parameters": {"maxGpus": 8}}

test_within_the_quota_passes if {
	count(gpu_quota.deny) == 0 with input as service({"replicas": 2, "resources": {"gpu": 2}, "versions": [{"version": "1", "weight": 100}]}, 4)
}

test_over_the_quota_is_denied if {
	gpu_quota.deny == {"service chat may hold 6 GPUs and the tenant's other services 4: over the tenant's quota of 8 (4 left)"} with input as service({"replicas": 3, "resources": {"gpu": 2}, "versions": [{"version": "1", "weight": 100}]}, 4)
}

test_autoscaling_counts_its_most if {
	gpu_quota.requested == 10 with input as service({"autoscaling": {"maxReplicas": 5}, "resources": {"gpu": 1}, "versions": [{"version": "1", "weight": 50}, {"version": "2", "weight": 50}]}, 0)
}

test_no_gpus_is_never_denied if {
	count(gpu_quota.deny) == 0 with input as service({"replicas": 3}, 9)
}
