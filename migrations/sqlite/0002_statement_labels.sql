-- Statement labels (metadata.labels), as JSON: the managed service's
-- clients tag statements and list them by label.
ALTER TABLE statements ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
