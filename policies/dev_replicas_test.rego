package autoglm.dev_replicas_test

import data.autoglm.dev_replicas

service(environment, spec) := {"name": "chat", "environment": environment, "resource": {"spec": spec}, "parameters": {}}

test_two_in_dev_pass if {
	count(dev_replicas.deny) == 0 with input as service("dev", {"replicas": 2})
}

test_three_in_dev_are_denied if {
	count(dev_replicas.deny) == 1 with input as service("dev", {"replicas": 3})
}

test_autoscaling_to_four_in_dev_is_denied if {
	count(dev_replicas.deny) == 1 with input as service("dev", {"autoscaling": {"maxReplicas": 4}})
}

test_prod_is_not_limited if {
	count(dev_replicas.deny) == 0 with input as service("prod", {"replicas": 10})
}
