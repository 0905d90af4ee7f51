DROP TABLE leases;
ALTER TABLE repositories DROP COLUMN maintenance_host_id;
DROP INDEX repositories_name;
ALTER TABLE repositories DROP COLUMN name;
