-- A registered composition of adapters: its parts and weights as JSON text; NULL for a plain adapter.
ALTER TABLE adapters ADD COLUMN composition text;
