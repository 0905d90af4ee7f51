DROP TABLE host_discovery;
