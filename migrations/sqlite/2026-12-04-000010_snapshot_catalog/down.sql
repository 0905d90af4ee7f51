DROP TABLE catalog_fts;
DROP TABLE catalog_live_dirs;
DROP TABLE catalog_entries;
DROP TABLE catalog_snapshots;
