DROP TABLE notification_outbox;
DROP TABLE notification_conditions;
DROP TABLE notification_channels;
