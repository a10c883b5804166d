import { describe, expect, it } from 'vitest';
import { issueAuthority } from './certificates';
import { readCrl, signCrl } from './crl';

// The CRL the CA signs is read back as it was written, and a list that is not
// this CA's, or was altered, is refused with a reason.

describe('the certificate revocation list', () => {
  it('reads back the serials, the number and the dates it was signed with', async () => {
    const ca = await issueAuthority(1);
    const at = new Date('2030-01-02T03:04:05Z');
    const pem = await signCrl(
      ca.signer,
      [
        { serial: 'abc', revokedAt: at },
        { serial: '7f00000000000000000000000000001', revokedAt: at },
      ],
      300n,
      at,
    );
    expect(pem).toMatch(/^-----BEGIN X509 CRL-----\n/);
    const list = await readCrl(pem, ca.cert);
    expect([...list.serials].sort()).toEqual(['7f00000000000000000000000000001', 'abc']);
    expect(list.number).toBe(300n);
    expect(list.thisUpdate.toISOString()).toBe('2030-01-02T03:04:05.000Z');
    expect(list.nextUpdate!.getTime()).toBeGreaterThan(at.getTime());
  });

  it('reads an empty list, and numbers whose top bit is set', async () => {
    const ca = await issueAuthority(1);
    const list = await readCrl(await signCrl(ca.signer, [], 255n), ca.cert);
    expect(list.serials.size).toBe(0);
    expect(list.number).toBe(255n);
  });

  it("refuses a list signed by another CA, as another CA's", async () => {
    const [ours, theirs] = await Promise.all([issueAuthority(1), issueAuthority(1)]);
    const foreign = await signCrl(theirs.signer, [], 1n);
    // Both CAs have the same subject, so only the signature tells them apart.
    await expect(readCrl(foreign, ours.cert)).rejects.toThrow("its signature is not the deployment CA's");
  });

  it('refuses a list whose signed part was altered', async () => {
    const ca = await issueAuthority(1);
    const pem = await signCrl(ca.signer, [{ serial: 'abcdef', revokedAt: new Date() }], 2n);
    const der = Buffer.from(pem.replace(/-----[A-Z0-9 ]+-----|\n/g, ''), 'base64');
    const at = der.indexOf(Buffer.from([0xab, 0xcd, 0xef])); // the revoked serial, inside what is signed
    expect(at).toBeGreaterThan(0);
    der[at + 2] ^= 0x01;
    const altered = `-----BEGIN X509 CRL-----\n${der.toString('base64')}\n-----END X509 CRL-----\n`;
    await expect(readCrl(altered, ca.cert)).rejects.toThrow("its signature is not the deployment CA's");
  });

  it('refuses what is not a CRL, and a CA file that is not a certificate', async () => {
    const ca = await issueAuthority(1);
    await expect(readCrl(ca.cert, ca.cert)).rejects.toThrow('not a PEM certificate revocation list');
    await expect(readCrl('garbage', ca.cert)).rejects.toThrow('not a PEM certificate revocation list');
    await expect(readCrl(await signCrl(ca.signer, [], 1n), 'garbage')).rejects.toThrow('the CA file is not a PEM certificate');
  });
});
