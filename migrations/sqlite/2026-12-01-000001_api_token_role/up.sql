-- An API token may act with less than its user's role (NULL: the user's role).
ALTER TABLE api_tokens ADD COLUMN role TEXT;
