-- Issue 14 §3: the version of what a host's `config.update` carries
-- (repository URL, user name, password, credential, hook shell),
-- PostgreSQL dialect; kept in step with
-- migrations/sqlite/2026-12-11-000001_config_versions/up.sql (see there
-- for what each column means).
ALTER TABLE hosts ADD COLUMN config_version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE hosts ADD COLUMN config_changed_at BIGINT;
ALTER TABLE hosts ADD COLUMN acked_config_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN config_acked_at BIGINT;

-- A repository whose settings change bumps every host that points to it.
CREATE FUNCTION repositories_config_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE hosts SET config_version = config_version + 1,
        config_changed_at = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT
        WHERE repository_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER repositories_config_version AFTER UPDATE ON repositories
    FOR EACH ROW WHEN (OLD.url IS DISTINCT FROM NEW.url
        OR OLD.username IS DISTINCT FROM NEW.username
        OR OLD.password_sealed IS DISTINCT FROM NEW.password_sealed
        OR OLD.credential_sealed IS DISTINCT FROM NEW.credential_sealed
        OR OLD.hook_shell IS DISTINCT FROM NEW.hook_shell)
    EXECUTE FUNCTION repositories_config_version();

-- A host pointed to another repository (or none) is bumped in the same row.
CREATE FUNCTION hosts_config_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.config_version := OLD.config_version + 1;
    NEW.config_changed_at := (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT;
    RETURN NEW;
END
$$;
CREATE TRIGGER hosts_config_version BEFORE UPDATE OF repository_id ON hosts
    FOR EACH ROW WHEN (OLD.repository_id IS DISTINCT FROM NEW.repository_id)
    EXECUTE FUNCTION hosts_config_version();
