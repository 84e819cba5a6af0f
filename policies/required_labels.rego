# Label conventions: every ModelService carries the labels that say who owns
# it and who pays for it (parameters.labels; team and cost-center when not
# given), each matching its pattern in parameters.patterns when one is given.
package autoglm.required_labels

required := object.get(input.parameters, "labels", ["team", "cost-center"])

patterns := object.get(input.parameters, "patterns", {})

labels := object.get(input.resource.metadata, "labels", {})

deny contains msg if {
	some label in required
	not labels[label]
	msg := sprintf("service %s must have the label %s", [input.name, label])
}

deny contains msg if {
	some label, pattern in patterns
	value := labels[label]
	not regex.match(pattern, value)
	msg := sprintf("label %s of service %s is %q, which does not match %s", [label, input.name, value, pattern])
}
