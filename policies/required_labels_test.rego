package autoglm.required_labels_test

import data.autoglm.required_labels

service(labels, parameters) := {"name": "chat", "resource": {"metadata": {"name": "chat", "labels": labels}}, "parameters": parameters}

test_both_labels_pass if {
	count(required_labels.deny) == 0 with input as service({"team": "nlp", "cost-center": "cc-1001"}, {})
}

test_missing_cost_center_is_denied if {
	required_labels.deny == {"service chat must have the label cost-center"} with input as service({"team": "nlp"}, {})
}

test_labels_come_from_parameters if {
	required_labels.deny == {"service chat must have the label owner"} with input as service({}, {"labels": ["owner"]})
}

test_a_value_must_match_its_pattern if {
	count(required_labels.deny) == 1 with input as service({"team": "nlp", "cost-center": "x"}, {"patterns": {"cost-center": "^cc-[0-9]{4}$"}})
	count(required_labels.deny) == 0 with input as service({"team": "nlp", "cost-center": "cc-1234"}, {"patterns": {"cost-center": "^cc-[0-9]{4}$"}})
}
