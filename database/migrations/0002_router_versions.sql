-- Router versions (router/routing/shared_store.py): each version's folder as a tar, named by the classifier's
-- content hash, and a one-row pointer to the live version.
CREATE TABLE router_versions (
    version text PRIMARY KEY,
    artifact bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Model weights hardly compress: store them out of line without spending CPU on trying.
ALTER TABLE router_versions ALTER COLUMN artifact SET STORAGE EXTERNAL;

CREATE TABLE router_live (
    id integer PRIMARY KEY CHECK (id = 1),
    version text NOT NULL REFERENCES router_versions,
    activated_at timestamptz NOT NULL DEFAULT now()
);
