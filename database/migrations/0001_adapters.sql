-- Registered adapters, laid out as in the SQLite store (lora_registry/store.py); JSON fields are text.
-- An identity column never hands out a value twice, not even the largest after its row is deleted: the
-- engine caches LoRA weights by id, so a reused id could serve a removed adapter's stale weights.
CREATE TABLE adapters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    path text NOT NULL,
    base_model text NOT NULL,
    rank integer NOT NULL,
    alpha double precision NOT NULL,
    target_modules text NOT NULL,
    size_bytes bigint NOT NULL,
    description text NOT NULL,
    defaults text NOT NULL,
    examples text NOT NULL,
    created_at bigint NOT NULL
);
