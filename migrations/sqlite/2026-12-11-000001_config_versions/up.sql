-- Issue 14 §3: the version of what a host's `config.update` carries
-- (repository URL, user name, password, credential, hook shell), SQLite
-- dialect; kept in step with migrations/postgres/2026-12-11-000001_config_versions/up.sql.
--
-- config_version: bumped by the triggers below whenever that content may
-- have changed, whichever store function made the write (a host's own
-- repository, a shared one, a policy's, config as code, a deleted shared
-- repository's ON DELETE SET NULL). Starts at 1: even a host without a
-- repository is sent an (empty) `config.update` that its agent acks.
-- config_changed_at: when it was last bumped (NULL: before this migration
-- or since enrolment; the UI then says "pending since" the enrolment).
-- acked_config_version / config_acked_at: the newest version the agent
-- acked (`ack` of the `config.update`), 0 / NULL: never.
ALTER TABLE hosts ADD COLUMN config_version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE hosts ADD COLUMN config_changed_at BIGINT;
ALTER TABLE hosts ADD COLUMN acked_config_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN config_acked_at BIGINT;

CREATE TRIGGER repositories_config_version AFTER UPDATE ON repositories
WHEN OLD.url IS NOT NEW.url OR OLD.username IS NOT NEW.username
    OR OLD.password_sealed IS NOT NEW.password_sealed
    OR OLD.credential_sealed IS NOT NEW.credential_sealed
    OR OLD.hook_shell IS NOT NEW.hook_shell BEGIN
    UPDATE hosts SET config_version = config_version + 1,
        config_changed_at = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
        WHERE repository_id = NEW.id;
END;
CREATE TRIGGER hosts_config_version AFTER UPDATE OF repository_id ON hosts
WHEN OLD.repository_id IS NOT NEW.repository_id BEGIN
    UPDATE hosts SET config_version = config_version + 1,
        config_changed_at = CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
        WHERE id = NEW.id;
END;
