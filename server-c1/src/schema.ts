// C1's SQLite schema, in one place. C1 stores only what the owner encrypted:
// Paillier ciphertexts under C2's key, AES-GCM-sealed identifiers and images,
// and HMAC lookup tags. The facts table (image size, pixel depth, key, schema
// version, and here the paper layout) is CollectionDatabase's.
import type { ChecksummedTable, CollectionSchema } from '@fnn/server-common';

// 6: the coarse family of the bound cascade (PROTOCOLS.md §3.5a), every blob with its checksum beside it
// (server-common/src/checksums.ts). Older files are refused, not migrated: the coarse constant is not a
// function of the stored ciphertexts, only the owner can make it.
export const SCHEMA_VERSION = 6;

/** The blobs of a record, each with its checksum column `<blob>_sha`; the row is named by its lookup tag. */
export const RECORD_BLOBS: ChecksummedTable = {
  table: 'records',
  key: 'lookup_tag',
  blobs: ['encrypted_id', 'sealed_image', 'sum', 'spread', 'pixels'],
};

/** A group's packed columns and constants, named by the group's number. */
export const GROUP_BLOBS: ChecksummedTable = { table: 'packed_groups', key: 'grp', blobs: ['pixels', 'embedding', 'coarse', 'constants'] };

const TABLES = `
-- One row per image. seq is the upload order: the candidate order of every
-- protocol and the tie rule (equal distances: the earlier upload wins).
CREATE TABLE IF NOT EXISTS records (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  lookup_tag   BLOB NOT NULL UNIQUE,  -- HMAC_k(ID): delete by ID without C1 learning it
  encrypted_id BLOB NOT NULL,         -- E_k(ID), AES-256-GCM
  sealed_image BLOB NOT NULL,         -- E_k(image), returned by the fast protocol
  -- The paper's layout (fnn, bf); NULL in a collection uploaded without it.
  sum          BLOB,                  -- E(S), for the paper's lower bound
  spread       BLOB,                  -- E(T), for the paper's lower bound
  pixels       BLOB,                  -- E(x_1) .. E(x_d), fixed-width ciphertexts back to back
  grp          INTEGER NOT NULL,      -- fast protocol: the group and slot this record is packed into
  slot         INTEGER NOT NULL,
  -- SHA-256 of (table, lookup tag, column, blob) per blob (RECORD_BLOBS), NULL where the blob is.
  encrypted_id_sha BLOB,
  sealed_image_sha BLOB,
  sum_sha          BLOB,
  spread_sha       BLOB,
  pixels_sha       BLOB,
  UNIQUE (grp, slot)
) STRICT;

-- The packed columns of each group with members, as the owner encrypted them
-- from all its members; rewritten in the same transaction as any change to a member.
CREATE TABLE IF NOT EXISTS packed_groups (
  grp       INTEGER PRIMARY KEY,
  version   BLOB NOT NULL,            -- random per change, the same in C2's replica (group digests)
  pixels    BLOB NOT NULL,
  embedding BLOB NOT NULL,
  coarse    BLOB NOT NULL,            -- the coarse family (§3.5a)
  constants BLOB NOT NULL,            -- the distance, bound and coarse constants
  -- SHA-256 of (table, group, column, blob) per blob (GROUP_BLOBS).
  pixels_sha    BLOB,
  embedding_sha BLOB,
  coarse_sha    BLOB,
  constants_sha BLOB
) STRICT;
`;

export const SCHEMA: CollectionSchema = {
  version: SCHEMA_VERSION,
  tables: TABLES,
  groups: { versions: 'packed_groups', members: 'records' },
  names: {
    daemon: 'C1',
    file: 'database',
    key: 'Paillier key',
    images: 'the collection',
    remedy: 'upload the collection into a new database',
  },
};
