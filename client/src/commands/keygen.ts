import { join } from 'node:path';
import { generateKeyPair, generateSymmetricKey } from '@fnn/shared';
import { KEY_PARTIES, PARTY_KEY_FILES, writeKeyDirectory, type KeyParty } from '../key-files';
import { CliError, type Output } from '../output';

/** Where each party's directory goes, said in keygen's output and the README. */
const DESTINATION: Record<KeyParty, string> = {
  c1: "C1's host: `fnn c1 --keys DIR`",
  c2: "C2's host: `fnn c2 --keys DIR`",
  owner: "the owner's machine: upload, delete, check, repair",
  doctor: "each doctor's machine: query, batch-query",
};

/** `fnn keygen`: C2's and C1's Paillier key pairs and the record key k, one directory per party. */
export async function keygen(out: Output, options: { out: string; bits: string }): Promise<void> {
  const bits = Number(options.bits);
  if (!Number.isInteger(bits) || bits < 256 || bits % 2 !== 0)
    throw new CliError('usage', '--bits must be an even number of at least 256 (2048 for real use)');
  if (bits < 2048) out.note(`warning: ${bits}-bit keys are for tests and demos only; use 2048 or more for real data`);
  const started = Date.now();
  const [c2, c1] = await Promise.all([generateKeyPair(bits), generateKeyPair(bits)]);
  const publicKey = c2.publicKey;
  writeKeyDirectory(options.out, c2, c1, generateSymmetricKey());
  const parties = Object.fromEntries(KEY_PARTIES.map((p) => [p, { dir: join(options.out, p), files: PARTY_KEY_FILES[p] }]));
  out.result(
    { dir: options.out, bits, fingerprint: publicKey.fingerprint(), parties, elapsedMs: Date.now() - started },
    [
      `keys written to ${options.out} (two ${bits}-bit Paillier key pairs, fingerprint ${publicKey.fingerprint()}, and the record key); copy each directory to one place:`,
      ...KEY_PARTIES.map((p) => `  ${join(options.out, p)}/  to ${DESTINATION[p]} (${PARTY_KEY_FILES[p].join(', ')})`),
      "c2/ and c1/ hold the only copies of the servers' secret keys: back them up offline; a lost one means a new keygen and a new upload",
    ].join('\n'),
  );
}
