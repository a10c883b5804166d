// A worker thread of the crypto pool (pool.ts). Keys arrive once per task as
// their JSON form and are rebuilt once per worker (the fixed-base table of a
// 2048-bit key takes ~0.1 s to build, so it is cached).
import { blindBatch, decryptBatch, multiplyBlindedBatch, squareBlindedBatch, unblindProductsBatch, unblindSquaresBatch } from './backend';
import type { FixedWidthValues } from './codec';
import { multiExpFixed } from './multiexp';
import { PublicKey, SecretKey } from './paillier';

export type Task =
  | { op: 'blind'; key: KeyMaterial; values: bigint[]; masks: bigint[] }
  | { op: 'unblindSquares'; key: KeyMaterial; h: bigint[]; values: bigint[]; masks: bigint[] }
  | { op: 'unblindProducts'; key: KeyMaterial; h: bigint[]; a: bigint[]; b: bigint[]; masksA: bigint[]; masksB: bigint[] }
  | { op: 'squareBlinded'; key: KeyMaterial; values: bigint[] }
  | { op: 'multiplyBlinded'; key: KeyMaterial; a: bigint[]; b: bigint[] }
  | { op: 'decrypt'; key: KeyMaterial; values: bigint[] }
  | { op: 'encrypt'; key: KeyMaterial; values: bigint[] }
  | { op: 'multiExp'; key: KeyMaterial; bases: FixedWidthValues; exponents: FixedWidthValues; modulus: bigint };

export interface KeyMaterial {
  id: string; // fingerprint
  publicKey: { n: string };
  secretKey?: { p: string; q: string };
}

const publicKeys = new Map<string, PublicKey>();
const secretKeys = new Map<string, SecretKey>();

function publicKeyOf(key: KeyMaterial): PublicKey {
  let pk = publicKeys.get(key.id);
  if (!pk) publicKeys.set(key.id, (pk = PublicKey.fromJSON(key.publicKey)));
  return pk;
}

function secretKeyOf(key: KeyMaterial): SecretKey {
  let sk = secretKeys.get(key.id);
  if (!sk) {
    if (!key.secretKey) throw new Error('this pool has no secret key');
    secretKeys.set(key.id, (sk = SecretKey.fromJSON(key.secretKey, publicKeyOf(key))));
  }
  return sk;
}

export default function run(task: Task): bigint[] {
  if (task.op === 'multiExp') return [multiExpFixed(task.bases, task.exponents, task.modulus)];
  switch (task.op) {
    case 'blind':
      return blindBatch(publicKeyOf(task.key), task.values, task.masks);
    case 'unblindSquares':
      return unblindSquaresBatch(publicKeyOf(task.key), task.h, task.values, task.masks);
    case 'unblindProducts':
      return unblindProductsBatch(publicKeyOf(task.key), task.h, task.a, task.b, task.masksA, task.masksB);
    case 'squareBlinded':
      return squareBlindedBatch(secretKeyOf(task.key), task.values);
    case 'multiplyBlinded':
      return multiplyBlindedBatch(secretKeyOf(task.key), task.a, task.b);
    case 'decrypt':
      return decryptBatch(secretKeyOf(task.key), task.values);
    default: {
      if (task.key.secretKey) return secretKeyOf(task.key).encryptMany(task.values);
      return publicKeyOf(task.key).encryptMany(task.values);
    }
  }
}
