import { generateKeyPair, generateSymmetricKey } from '@fnn/shared';
import { C1_PUBLIC_KEY_FILE, C1_SECRET_KEY_FILE, PUBLIC_KEY_FILE, RECORD_KEY_FILE, SECRET_KEY_FILE, writeKeyDirectory } from '../key-files';
import { CliError, type Output } from '../output';

export async function keygen(out: Output, options: { out: string; bits: string }): Promise<void> {
  const bits = Number(options.bits);
  if (!Number.isInteger(bits) || bits < 256 || bits % 2 !== 0)
    throw new CliError('usage', '--bits must be an even number of at least 256 (2048 for real use)');
  if (bits < 2048) out.note(`warning: ${bits}-bit keys are for tests and demos only; use 2048 or more for real data`);
  const started = Date.now();
  const [c2, c1] = await Promise.all([generateKeyPair(bits), generateKeyPair(bits)]);
  const publicKey = c2.publicKey;
  writeKeyDirectory(options.out, c2, c1, generateSymmetricKey());
  out.result(
    { dir: options.out, bits, fingerprint: publicKey.fingerprint(), elapsedMs: Date.now() - started },
    [
      `keys written to ${options.out} (${bits}-bit Paillier, fingerprint ${publicKey.fingerprint()})`,
      `  ${PUBLIC_KEY_FILE}  public key: give to C1, C2 and doctors`,
      `  ${SECRET_KEY_FILE}   C2's secret key: give to C2 only (keep a backup with the owner)`,
      `  ${C1_PUBLIC_KEY_FILE}  C1's public key: give to C2 and the owner`,
      `  ${C1_SECRET_KEY_FILE}   C1's secret key: give to C1 only (keep a backup with the owner)`,
      `  ${RECORD_KEY_FILE}       record key k: owner and authorised doctors only`,
    ].join('\n'),
  );
}
