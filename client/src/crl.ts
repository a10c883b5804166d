// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { normalSerial } from '@fnn/shared';
import type { Authority } from './certificates';

// The deployment's certificate revocation list: a real X.509 CRL signed by the
// CA, so that any tool (openssl crl -verify) can read it and a daemon can tell
// a list from its own CA from one anyone could have written.

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const crypto = webcrypto as unknown as Crypto;
const CRL_NUMBER_OID = '2.5.29.20';
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * How long a list says it stays current. Nothing re-signs it on a timer, so
 * this is long; a daemon only warns once it has passed (it keeps refusing what
 * the list names: an old list is still better than none).
 */
export const CRL_DAYS = 365;

/** What is read from a file, before parsing: a deployment revokes tens, not millions. */
export const MAX_CRL_BYTES = 4 * 1024 * 1024;

export interface RevokedSerial {
  serial: string;
  revokedAt: Date;
}

export interface RevocationList {
  /** Increases with every list the CA signs: a daemon refuses to go back to a lower one. */
  number: bigint;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  /** Lower-case hex without leading zeros, as callerIdentity gives a certificate's serial. */
  serials: ReadonlySet<string>;
}

/** A CRL listing every serial in `revoked`, signed by the CA, as PEM. */
export async function signCrl(
  ca: Authority['signer'],
  revoked: readonly RevokedSerial[],
  number: bigint,
  now = new Date(),
): Promise<string> {
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: ca.certificate.subject,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + CRL_DAYS * DAY_MS),
      signingAlgorithm: ALGORITHM,
      signingKey: ca.keys.privateKey,
      // The invalidity date also keeps each entry's extensions non-empty: @peculiar/x509 2.2 writes an empty
      // SEQUENCE otherwise, which is not DER and which openssl refuses.
      entries: revoked.map((r) => ({ serialNumber: evenHex(r.serial), revocationDate: r.revokedAt, invalidity: r.revokedAt })),
      extensions: [
        new x509.Extension(CRL_NUMBER_OID, false, new Uint8Array(derInteger(number))),
        await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  // "X509 CRL", the label RFC 7468 and openssl use (the library writes "CRL").
  const base64 = Buffer.from(crl.rawData).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN X509 CRL-----\n${base64}\n-----END X509 CRL-----\n`;
}

/**
 * Parse a CRL and check it is the deployment CA's: issued by its subject and
 * signed by its key. Throws an Error whose message says what is wrong (never
 * the file's content).
 */
export async function readCrl(pem: Buffer | string, caPem: Buffer | string): Promise<RevocationList> {
  if (pem.length > MAX_CRL_BYTES) throw new Error(`larger than ${MAX_CRL_BYTES} bytes`);
  let crl: x509.X509Crl;
  let ca: x509.X509Certificate;
  try {
    ca = new x509.X509Certificate(caPem.toString());
  } catch {
    throw new Error('the CA file is not a PEM certificate');
  }
  try {
    crl = new x509.X509Crl(pem.toString());
  } catch {
    throw new Error('not a PEM certificate revocation list');
  }
  if (crl.issuer !== ca.subject) throw new Error("issued by another CA, not this deployment's");
  let signed: boolean;
  try {
    signed = await crl.verify({ publicKey: ca }, crypto);
  } catch {
    signed = false;
  }
  if (!signed) throw new Error("its signature is not the deployment CA's");
  const numberExtension = crl.getExtension(CRL_NUMBER_OID);
  if (!numberExtension) throw new Error('it has no CRL number');
  return {
    number: readDerInteger(Buffer.from(numberExtension.value)),
    thisUpdate: crl.thisUpdate,
    nextUpdate: crl.nextUpdate,
    serials: new Set(crl.entries.map((e) => normalSerial(e.serialNumber))),
  };
}

// DER wants a serial's hex in whole bytes.
const evenHex = (hex: string) => (hex.length % 2 ? `0${hex}` : hex);

/** A non-negative INTEGER, DER-encoded: the CRL number's value. */
function derInteger(value: bigint): Buffer {
  let hex = evenHex(value.toString(16));
  if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = `00${hex}`;
  const body = Buffer.from(hex, 'hex');
  return Buffer.concat([Buffer.from([0x02, body.length]), body]);
}

function readDerInteger(der: Buffer): bigint {
  // RFC 5280 bounds the CRL number to 20 octets.
  if (der.length < 3 || der[0] !== 0x02 || der[1] !== der.length - 2 || der[1] > 21) throw new Error('its CRL number is malformed');
  return BigInt(`0x${der.subarray(2).toString('hex')}`);
}
