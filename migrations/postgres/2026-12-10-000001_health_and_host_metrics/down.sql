ALTER TABLE policies DROP COLUMN health_checks;
DROP INDEX host_metrics_age;
DROP TABLE host_metrics;
DROP TABLE health_history;
DROP INDEX health_results_ok;
DROP TABLE health_results;
DROP TABLE health_checks;
