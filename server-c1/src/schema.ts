// C1's SQLite schema, in one place. C1 stores only what the owner encrypted:
// Paillier ciphertexts, AES-GCM-sealed identifiers and HMAC lookup tags.
export const SCHEMA_VERSION = 1;

export const SCHEMA = `
-- One row per fact about the collection (image size, pixel depth, key).
CREATE TABLE IF NOT EXISTS collection (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

-- One row per image. seq is the upload order: the candidate order of every
-- protocol and the tie rule (equal distances: the earlier upload wins).
CREATE TABLE IF NOT EXISTS records (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  lookup_tag   BLOB NOT NULL UNIQUE,  -- HMAC_k(ID): delete by ID without C1 learning it
  encrypted_id BLOB NOT NULL,         -- E_k(ID), AES-256-GCM
  sum          BLOB NOT NULL,         -- E(S), for the lower bound
  spread       BLOB NOT NULL,         -- E(T), for the lower bound
  pixels       BLOB NOT NULL          -- E(x_1) .. E(x_d), fixed-width ciphertexts back to back
) STRICT;
`;
