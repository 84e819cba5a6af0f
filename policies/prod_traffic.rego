# In prod (a ModelService's `environment` label), only a version in stage
# production may take more than half of the traffic; the console gives each
# listed version's stage in input.context.versionStages.
package autoglm.prod_traffic

stages := object.get(object.get(input, "context", {}), "versionStages", {})

deny contains msg if {
	input.environment == "prod"
	some split in input.resource.spec.versions
	split.weight > 50
	stage := object.get(stages, split.version, "unknown")
	stage != "production"
	msg := sprintf("version %s of prod service %s is in stage %s and may take at most 50%% of the traffic, not %d%%", [split.version, input.name, stage, split.weight])
}
