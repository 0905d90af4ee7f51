-- Options per source group (issue 12 §5): the allow-listed restic options
-- of a group as JSON (protocol::RunOptions); for a policy's group on a
-- host, the policy's options with the group's own on top. NULL: none.
ALTER TABLE source_groups ADD COLUMN options TEXT;

-- A policy's shared repository (issue 12 §1/§3): set when the host's
-- repository_id was given by this policy (the host had none of its own);
-- NULL when the host chose its repository itself (or has none).
ALTER TABLE hosts ADD COLUMN repository_policy_id TEXT;
