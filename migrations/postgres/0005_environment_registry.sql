-- An environment's external Confluent-compatible schema registry: NULL
-- means the built-in one. JSON: {"url", "username", "password"}.
ALTER TABLE environments ADD COLUMN schema_registry TEXT;
