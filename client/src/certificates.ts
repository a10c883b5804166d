// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API first.
import 'reflect-metadata';
import { createPrivateKey, KeyObject, randomBytes, webcrypto, X509Certificate as NodeCertificate } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { normalSerial, type Role } from '@fnn/shared';

// Issuing the deployment's certificates: a small CA and one certificate per
// party. Keys and signatures come from Node's own WebCrypto (ECDSA P-256);
// @peculiar/x509 only encodes the certificates (docs/SECURITY.md says why this
// library). The role is the subject's OU, which is what the daemons check.

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
const crypto = webcrypto as unknown as Crypto;

export interface IssuedPem {
  cert: string;
  key: string;
}

/** A party's certificate as issued, with what the register of issued certificates keeps of it. */
export interface IssuedParty extends IssuedPem {
  /** Lower-case hex without leading zeros, as the daemons and the CRL name it. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export interface Authority extends IssuedPem {
  /** For signing the parties' certificates in this run; never written anywhere but the CA's key file. */
  signer: { certificate: x509.X509Certificate; keys: CryptoKeyPair };
}

export interface PartyRequest {
  role: Role;
  /** The subject's CN: who this is (a doctor's name, or the role). */
  name: string;
  /** DNS names and IP addresses a server is reached at; none for a client. */
  hosts: string[];
  days: number;
}

export async function issueAuthority(days: number): Promise<Authority> {
  const keys = await generateKeys();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial(),
      name: 'CN=FNN deployment CA, O=FNN',
      ...validity(days),
      keys,
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { cert: certificate.toString('pem'), key: exportKey(keys.privateKey), signer: { certificate, keys } };
}

/**
 * A party's certificate. C1 and C2 are servers; C1 also calls C2, so its
 * certificate serves both ways; the owner and doctors are clients only. C2's
 * is a client too so that its host can run `fnn health` with it (deploy/):
 * the role table lets c2 call nothing but status, health and reflection.
 */
export async function issueParty(ca: Authority, request: PartyRequest): Promise<IssuedParty> {
  const keys = await generateKeys();
  const server = request.role === 'c1' || request.role === 'c2';
  const usages = [...(server ? [x509.ExtendedKeyUsage.serverAuth] : []), x509.ExtendedKeyUsage.clientAuth];
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: [{ CN: [request.name] }, { OU: [request.role] }, { O: ['FNN'] }],
      issuer: ca.signer.certificate.subject,
      ...validity(request.days),
      publicKey: keys.publicKey,
      signingKey: ca.signer.keys.privateKey,
      signingAlgorithm: ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(usages, false),
        await x509.AuthorityKeyIdentifierExtension.create(ca.signer.keys.publicKey, false, crypto),
        ...(request.hosts.length
          ? [
              new x509.SubjectAlternativeNameExtension(
                request.hosts.map((h) => ({ type: isIP(h) ? ('ip' as const) : ('dns' as const), value: h })),
              ),
            ]
          : []),
      ],
    },
    crypto,
  );
  return {
    cert: certificate.toString('pem'),
    key: exportKey(keys.privateKey),
    serial: normalSerial(certificate.serialNumber),
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
  };
}

/**
 * The CA kept from `fnn certs init`, to sign more certificates and the CRL.
 * Throws an Error naming what is wrong: not PEM, not a CA, or a key that is not the certificate's.
 */
export async function loadAuthority(certPem: string, keyPem: string): Promise<Authority> {
  let certificate: x509.X509Certificate;
  let node: NodeCertificate;
  try {
    certificate = new x509.X509Certificate(certPem);
    node = new NodeCertificate(certPem);
  } catch {
    throw new Error('the CA certificate is not PEM');
  }
  if (!node.ca) throw new Error('the CA certificate is not a CA');
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new Error('the CA key is not a PEM private key');
  }
  if (!node.checkPrivateKey(key)) throw new Error('the CA key is not the key of the CA certificate');
  const privateKey = await crypto.subtle.importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), ALGORITHM, true, ['sign']);
  const publicKey = await certificate.publicKey.export(ALGORITHM, ['verify'], crypto);
  return { cert: certPem, key: keyPem, signer: { certificate, keys: { privateKey, publicKey } } };
}

function generateKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

function exportKey(key: CryptoKey): string {
  return KeyObject.from(key as unknown as webcrypto.CryptoKey).export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** A positive 128-bit serial: unique without keeping a counter. */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  return bytes.toString('hex');
}

// Back-dated by an hour so a peer whose clock is slightly behind accepts a fresh certificate.
function validity(days: number) {
  const now = Date.now();
  return { notBefore: new Date(now - 60 * 60 * 1000), notAfter: new Date(now + days * DAY_MS) };
}
