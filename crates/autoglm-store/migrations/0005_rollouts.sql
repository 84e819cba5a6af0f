-- A service's rollout, as the rollout state machine left it (JSON): phase,
-- stable and canary versions, step, weight, analysis results. NULL when no
-- rollout ever ran. spec.versions always holds the split the rollout set.
ALTER TABLE services ADD COLUMN rollout TEXT;
