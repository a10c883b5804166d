import type { PeerCertificate } from 'node:tls';
import { Metadata, status as Code, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { beforeAll, describe, expect, it } from 'vitest';
import type * as wire from '@fnn/proto';
import {
  generateKeyPair,
  localC2Crypto,
  residueToBytes,
  RetrievalStore,
  shareQuery,
  silentLogger,
  TicketStore,
  WireCodec,
  type QueryShares,
} from '@fnn/shared';
import { localMultiExp } from '@fnn/server-common/testing';
import type { ReplicaStore } from './replica-store';
import { DEFAULT_SESSION_LIMITS, retrievalService, type C2ServiceDeps } from './services';
import { KEY_BITS, PARAMS, randomImage } from './testing/fixtures';

// PutShare counts a share against the caller's verified certificate (subject
// and serial), which gRPC gives the handler on the call: one doctor's flood is
// refused at its own cap and leaves another doctor's room and held share alone.
// Here the calls carry the certificates TLS would have verified (the handler is
// called directly); the daemon over the wire, without TLS, is bounds.test.ts.

const PER_CALLER = 3;
let deps: C2ServiceDeps;
let shares: TicketStore<QueryShares>;
let service: wire.RetrievalServer;
let share: wire.QueryShare;

const doctor = (serialNumber: string) =>
  ({ subject: { CN: 'doctor', OU: 'doctor', O: 'FNN' }, serialNumber }) as unknown as PeerCertificate;

/** PutShare as gRPC calls it for a caller presenting `cert`: the ticket, or the status it failed with. */
function putShare(cert: PeerCertificate): Promise<string> {
  const call = {
    request: share,
    metadata: new Metadata(),
    getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate: cert }),
  } as unknown as ServerUnaryCall<wire.QueryShare, wire.ShareTicket>;
  return new Promise((resolve, reject) =>
    service.putShare(call, (error, reply) => (error ? reject(error as ServiceError) : resolve(reply!.ticket))),
  );
}

beforeAll(async () => {
  const keys = await generateKeyPair(KEY_BITS);
  shares = new TicketStore<QueryShares>('query share ticket', {
    limits: { perCaller: { entries: PER_CALLER, bytes: 1 << 30 }, total: { entries: 1000, bytes: 1 << 30 } },
  });
  deps = {
    crypto: localC2Crypto(keys.secretKey),
    retrievals: new RetrievalStore(),
    codec: new WireCodec(keys.publicKey.cipherBytes),
    log: silentLogger,
    // PutShare reads only the collection's packing from the replica.
    replica: { params: () => PARAMS, count: 0 } as unknown as ReplicaStore,
    fast: { crypto: { sk2: keys.secretKey, pk1: keys.publicKey, multiExp: localMultiExp }, replica: () => undefined as never, shares },
    sessions: DEFAULT_SESSION_LIMITS,
  };
  service = retrievalService(deps, () => 0);
  const { forC2 } = await shareQuery(randomImage(), PARAMS, async (values) => values.map((v) => keys.publicKey.encrypt(v)));
  share = {
    distance: forC2.distance.map(residueToBytes),
    bound: forC2.bound.map(residueToBytes),
    coarse: forC2.coarse.map(residueToBytes),
  };
});

describe('PutShare counts shares per caller certificate', () => {
  it("one doctor's flood is refused at its own cap; another certificate still deposits and its held share is intact", async () => {
    const a = doctor('0a');
    const b = doctor('0b'); // the same subject, another certificate
    const bHeld = await putShare(b);
    for (let i = 0; i < PER_CALLER; i++) await putShare(a);
    await expect(putShare(a)).rejects.toMatchObject({ code: Code.RESOURCE_EXHAUSTED });
    expect(shares.heldBy(JSON.stringify(a.subject) + '#0a').entries).toBe(PER_CALLER);
    expect(await putShare(b), "b is not refused for a's flood").toMatch(/^[0-9a-f]{32}$/);
    expect(shares.size).toBe(PER_CALLER + 2);
    expect(shares.take(bHeld).distance.length, "b's share deposited before the flood is still there").toBe(PARAMS.width * PARAMS.height);
  });
});
