-- pg_trgm stays: other objects of the database may use it.
DROP TABLE catalog_live_dirs;
DROP TABLE catalog_entries;
DROP TABLE catalog_snapshots;
