-- Kafka destinations: one record per event on the client's topic.
ALTER TABLE destinations DROP CONSTRAINT destinations_kind_check;
ALTER TABLE destinations ADD CONSTRAINT destinations_kind_check
    CHECK (kind IN ('amqp', 'mqtt', 'webhook', 'kafka'));
