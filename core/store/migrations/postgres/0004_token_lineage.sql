-- Token lineage: revoking a token walks its descendants through parent_id.
CREATE INDEX tokens_parent ON tokens(parent_id);
