import { encryptRecord, WireCodec } from '@fnn/shared';
import * as wire from '@fnn/proto';
import { call, checkAddress, connectC1 } from '../connect';
import { createCrypto } from '../crypto-workers';
import { expandImagePaths, readImage, recordIdOf } from '../image-files';
import { hasSecretKey, loadPublicKey, loadRecordKey, loadSecretKey } from '../key-files';
import { CliError, classify, EXIT, type Output } from '../output';

/**
 * `fnn upload`: encrypt each image and send it as its own request, so each is
 * one transaction at C1: a failure leaves the others stored and nothing half-written.
 */
export async function upload(out: Output, paths: string[], options: { c1: string; keys: string; id?: string }) {
  const address = checkAddress(options.c1, '--c1', 'FNN_C1');
  const files = expandImagePaths(paths);
  if (options.id !== undefined && files.length !== 1) throw new CliError('usage', '--id names one record: give one file');
  const publicKey = loadPublicKey(options.keys);
  // The owner made the key pair: with the factorisation, encryption is faster.
  const secretKey = hasSecretKey(options.keys) ? loadSecretKey(options.keys, publicKey) : undefined;
  const recordKey = loadRecordKey(options.keys);
  const crypto = createCrypto(publicKey, secretKey);
  const codec = new WireCodec(publicKey.cipherBytes);
  const client = connectC1(address);
  const started = Date.now();
  let stored = 0;
  let failed = 0;
  try {
    for (const [i, file] of files.entries()) {
      const id = options.id ?? recordIdOf(file);
      try {
        const image = readImage(file);
        const record = await encryptRecord((v) => crypto.pool.encrypt(v), recordKey, id, image.pixels);
        const request: wire.UploadRequest = {
          keyFingerprint: publicKey.fingerprint(),
          width: image.width,
          height: image.height,
          maxValue: image.maxValue,
          records: [codec.recordToWire(record)],
        };
        const reply = await call(client.upload.bind(client), request, 10 * 60_000);
        stored++;
        out.result(
          { file, id, status: reply.replaced > 0 ? 'replaced' : 'stored', total: Number(reply.total) },
          `[${i + 1}/${files.length}] ${id}: ${reply.replaced > 0 ? 'replaced' : 'stored'} (${reply.total} records)`,
        );
      } catch (error) {
        failed++;
        const { reason } = classify(error);
        out.result({ file, id, status: 'failed', error: reason }, `[${i + 1}/${files.length}] ${file}: FAILED: ${reason}`);
        if (classify(error).code === EXIT.unavailable) throw error; // C1 is down: the rest would fail too
      }
    }
  } finally {
    client.close();
    await crypto.close();
  }
  out.note(`uploaded ${stored} of ${files.length} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (failed > 0) throw new CliError('invalid', `${failed} of ${files.length} images were not uploaded`);
}
