package autoglm.prod_traffic_test

import data.autoglm.prod_traffic

service(environment, versions) := {
	"name": "chat",
	"environment": environment,
	"resource": {"spec": {"versions": versions}},
	"context": {"versionStages": {"1": "production", "2": "staging"}},
}

test_a_production_version_may_take_all if {
	count(prod_traffic.deny) == 0 with input as service("prod", [{"version": "1", "weight": 100}])
}

test_a_staging_canary_at_half_passes if {
	count(prod_traffic.deny) == 0 with input as service("prod", [{"version": "1", "weight": 50}, {"version": "2", "weight": 50}])
}

test_a_staging_version_over_half_is_denied if {
	prod_traffic.deny == {"version 2 of prod service chat is in stage staging and may take at most 50% of the traffic, not 90%"} with input as service("prod", [{"version": "1", "weight": 10}, {"version": "2", "weight": 90}])
}

test_other_environments_are_not_asked if {
	count(prod_traffic.deny) == 0 with input as service("staging", [{"version": "2", "weight": 100}])
}
