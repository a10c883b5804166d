import Database from 'better-sqlite3';
import { bytesToCipher, cipherToBytes, invalidInput, notFound, type EncryptedStats, type RecordSource } from '@fnn/shared';
import { SCHEMA, SCHEMA_VERSION } from './schema';

export interface CollectionShape {
  width: number;
  height: number;
  maxValue: number;
}

export interface StoredRecord extends EncryptedStats {
  lookupTag: Buffer;
  encryptedId: Buffer;
  pixels: bigint[];
}

/**
 * C1's record store. Each upload and each delete is one transaction (WAL mode),
 * so a crash leaves every record either fully there or not there at all.
 */
export class RecordStore {
  private readonly db: Database.Database;

  constructor(
    path: string,
    private readonly keyFingerprint: string,
    private readonly cipherBytes: number,
  ) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('secure_delete = ON'); // deleted ciphertexts are overwritten, not just unlinked
    try {
      this.db.exec(SCHEMA);
      this.bindKey();
    } catch (error) {
      this.db.close();
      throw error;
    }
  }

  close(): void {
    this.db.close();
  }

  get count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM records').get() as { n: number }).n;
  }

  shape(): CollectionShape | undefined {
    const width = this.fact('width');
    if (width === undefined) return undefined;
    return { width: Number(width), height: Number(this.fact('height')), maxValue: Number(this.fact('max_value')) };
  }

  /** Store (or replace, by lookup tag) records of one shape, all in one transaction. */
  upsert(shape: CollectionShape, records: StoredRecord[]): { stored: number; replaced: number } {
    const write = this.db.transaction(() => {
      const current = this.shape();
      if (current === undefined) {
        this.setFact('width', String(shape.width));
        this.setFact('height', String(shape.height));
        this.setFact('max_value', String(shape.maxValue));
      } else if (current.width !== shape.width || current.height !== shape.height) {
        throw invalidInput(
          `image is ${shape.width}x${shape.height}, the collection's images are ${current.width}x${current.height}`,
        );
      } else if (current.maxValue !== shape.maxValue) {
        throw invalidInput(`image pixel depth ${shape.maxValue} differs from the collection's ${current.maxValue}`);
      }
      let replaced = 0;
      const d = shape.width * shape.height;
      // A replacement keeps its seq: the upload order (and so the tie rule) does not change.
      const update = this.db.prepare(
        'UPDATE records SET encrypted_id = ?, sum = ?, spread = ?, pixels = ? WHERE lookup_tag = ?',
      );
      const insert = this.db.prepare(
        'INSERT INTO records (lookup_tag, encrypted_id, sum, spread, pixels) VALUES (?, ?, ?, ?, ?)',
      );
      records.forEach((r, i) => {
        if (r.pixels.length !== d) throw invalidInput(`record ${i + 1} has ${r.pixels.length} pixels, expected ${d}`);
        const row = [r.encryptedId, this.pack([r.sum]), this.pack([r.spread]), this.pack(r.pixels)];
        if (update.run(...row, r.lookupTag).changes > 0) replaced++;
        else insert.run(r.lookupTag, ...row);
      });
      return { stored: records.length - replaced, replaced };
    });
    const result = write.immediate();
    if (result.replaced > 0) this.db.pragma('wal_checkpoint(TRUNCATE)'); // the replaced ciphertexts leave the WAL
    return result;
  }

  /** Remove records by lookup tag; all or nothing: an unknown tag deletes none. */
  delete(tags: Buffer[]): number {
    const remove = this.db.transaction(() => {
      const del = this.db.prepare('DELETE FROM records WHERE lookup_tag = ?');
      let n = 0;
      tags.forEach((tag, i) => {
        if (del.run(tag).changes === 0) throw notFound(`record ${i + 1} of ${tags.length} is not in the collection`);
        n++;
      });
      if (this.count === 0) this.db.prepare("DELETE FROM collection WHERE name NOT IN ('key', 'schema_version')").run();
      return n;
    });
    const n = remove.immediate();
    this.db.pragma('wal_checkpoint(TRUNCATE)'); // the deleted pages leave the WAL too
    return n;
  }

  /** The records as the protocols see them, in upload order, frozen at this moment. */
  snapshot(): RecordSource & { encryptedId(candidate: number): Buffer } {
    const shape = this.shape();
    const rows = this.db
      .prepare('SELECT seq, encrypted_id, sum, spread FROM records ORDER BY seq')
      .all() as { seq: number; encrypted_id: Buffer; sum: Buffer; spread: Buffer }[];
    const getPixels = this.db.prepare('SELECT pixels FROM records WHERE seq = ?');
    const dimension = shape ? shape.width * shape.height : 0;
    return {
      count: rows.length,
      dimension,
      stats: async () => rows.map((r) => ({ sum: this.unpack(r.sum)[0], spread: this.unpack(r.spread)[0] })),
      pixels: async (candidate) => {
        const row = getPixels.get(rows[candidate].seq) as { pixels: Buffer } | undefined;
        if (!row) throw notFound('a record was deleted during the query; run the query again');
        return this.unpack(row.pixels);
      },
      encryptedId: (candidate) => rows[candidate].encrypted_id,
    };
  }

  integrityCheck(): string {
    return (this.db.pragma('integrity_check', { simple: true }) as string) ?? 'unknown';
  }

  private pack(ciphers: bigint[]): Buffer {
    return Buffer.concat(ciphers.map((c) => cipherToBytes(c, this.cipherBytes)));
  }

  private unpack(blob: Buffer): bigint[] {
    const out: bigint[] = [];
    for (let off = 0; off < blob.length; off += this.cipherBytes)
      out.push(bytesToCipher(blob.subarray(off, off + this.cipherBytes)));
    return out;
  }

  /** A database belongs to one Paillier key: refuse to mix ciphertexts of two keys. */
  private bindKey(): void {
    const stored = this.fact('key');
    if (stored === undefined) this.setFact('key', this.keyFingerprint);
    else if (stored !== this.keyFingerprint)
      throw invalidInput('this database holds records encrypted under another Paillier key');
    const version = this.fact('schema_version');
    if (version === undefined) this.setFact('schema_version', String(SCHEMA_VERSION));
  }

  private fact(name: string): string | undefined {
    return (this.db.prepare('SELECT value FROM collection WHERE name = ?').get(name) as { value: string } | undefined)
      ?.value;
  }

  private setFact(name: string, value: string): void {
    this.db.prepare('INSERT INTO collection (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value').run(name, value);
  }
}
