import type * as wire from '@fnn/proto';
import { checkHealth, DEFAULT_COLLECTION, settingsFromWire, type Transport } from '@fnn/shared';
import { collectionFlag } from '../collections';
import { call, checkAddress, connectC1, connectC2, connectHealth } from '../connect';
import { classify, CliError, EXIT, type Output } from '../output';

const STATUS_TIMEOUT_MS = 5000;

/** The settings a collection applies to every upload and query, as its flags would give them. */
const settingsText = (s: wire.CollectionSettings | undefined) => {
  if (!s) return '';
  const { offset, fit } = settingsFromWire(s);
  return `, --offset ${offset} --fit ${fit}`;
};

/**
 * `fnn status`: are both daemons serving (the standard health service), can C1
 * reach C2, are they on the same key and do their replicas hold as many
 * records, and what does C1 hold? Exit 6 when a daemon refuses this
 * certificate (revoked), 5 when a daemon or the link is down, 1 when the keys
 * differ, 3 when the replicas differ (in that order).
 */
export async function status(out: Output, options: { c1: string; c2: string; collection?: string; transport: Transport }): Promise<void> {
  const c1Address = checkAddress(options.c1, '--c1', 'FNN_C1');
  const c2Address = checkAddress(options.c2, '--c2', 'FNN_C2');
  // The records, size and replica reported are the named collection's; keys, sessions and the link are the daemons'.
  const collection = collectionFlag(options.collection);
  const c1 = connectC1(c1Address, options.transport, collection);
  const c2 = connectC2(c2Address, options.transport, collection);
  const c1Health = connectHealth(c1Address, options.transport, 'c1');
  const c2Health = connectHealth(c2Address, options.transport, 'c2');
  // Ready first (health), then what it holds (the daemon's own Status).
  const serving = async <T>(health: typeof c1Health, service: string, details: () => Promise<T>) => {
    const state = await checkHealth(health, service, new Date(Date.now() + STATUS_TIMEOUT_MS));
    if (state !== 'SERVING') throw new CliError('unavailable', `health: ${state}`);
    return details();
  };
  try {
    const [db, holder] = await Promise.allSettled([
      serving(c1Health, 'fnn.v1.Database', () => call(c1.status.bind(c1), {}, STATUS_TIMEOUT_MS)),
      serving(c2Health, 'fnn.v1.SecureComputation', () => call(c2.status.bind(c2), {}, STATUS_TIMEOUT_MS)),
    ]);
    const c1Up = db.status === 'fulfilled' ? db.value : undefined;
    const c2Up = holder.status === 'fulfilled' ? holder.value : undefined;
    const sameKey = c1Up && c2Up ? c1Up.keyFingerprint === c2Up.keyFingerprint : undefined;
    const report = {
      c1: c1Up
        ? {
            up: true,
            records: Number(c1Up.records),
            width: c1Up.width,
            height: c1Up.height,
            maxValue: c1Up.maxValue,
            // What every upload and query of the collection applies (collection-settings.ts).
            ...(c1Up.settings ? { settings: settingsFromWire(c1Up.settings) } : {}),
            keyBits: c1Up.keyBits,
            keyFingerprint: c1Up.keyFingerprint,
            seesC2: c1Up.c2Reachable,
          }
        : { up: false, error: classify((db as PromiseRejectedResult).reason).reason },
      c2: c2Up
        ? {
            up: true,
            keyBits: c2Up.keyBits,
            keyFingerprint: c2Up.keyFingerprint,
            replicaRecords: Number(c2Up.replicaRecords),
            openSessions: c2Up.openSessions,
            pendingRetrievals: c2Up.pendingRetrievals,
          }
        : { up: false, error: classify((holder as PromiseRejectedResult).reason).reason },
      sameKey,
      ...(collection !== DEFAULT_COLLECTION ? { collection } : {}),
    };
    const named = collection !== DEFAULT_COLLECTION ? `collection ${collection}: ` : '';
    const lines = [
      c1Up
        ? `C1 ${options.c1}: up, ${named}${c1Up.records} records${c1Up.width ? ` of ${c1Up.width}x${c1Up.height} (max ${c1Up.maxValue}${settingsText(c1Up.settings)})` : ''}, ${c1Up.keyBits}-bit key ${c1Up.keyFingerprint}, C2 ${c1Up.c2Reachable ? 'reachable' : 'NOT reachable'} from C1`
        : `C1 ${options.c1}: DOWN (${report.c1.error})`,
      c2Up
        ? `C2 ${options.c2}: up, ${c2Up.keyBits}-bit key ${c2Up.keyFingerprint}, replica of ${c2Up.replicaRecords} records, ${c2Up.openSessions} open sessions`
        : `C2 ${options.c2}: DOWN (${report.c2.error})`,
    ];
    // What an operator must fix, most urgent first: the first decides the exit code.
    const problems: { kind: CliError['kind']; line: string }[] = [];
    // A daemon that refuses this certificate (revoked, or of a role it does not serve) is up: say so, exit 6.
    const unusable = (name: string, address: string, failed: PromiseSettledResult<unknown>) => {
      const { code, reason } = classify((failed as PromiseRejectedResult).reason);
      problems.push(
        code === EXIT.refused
          ? { kind: 'refused', line: `${name} ${address} refused this certificate (${reason})` }
          : { kind: 'unavailable', line: `${name} ${address} is down` },
      );
    };
    if (!c1Up) unusable('C1', options.c1, db);
    if (!c2Up) unusable('C2', options.c2, holder);
    if (c1Up && !c1Up.c2Reachable)
      problems.push({ kind: 'unavailable', line: "the link from C1 to C2 is down: C1 cannot reach its C2 (see C1's log for the address)" });
    if (sameKey === false) problems.push({ kind: 'failure', line: 'C1 and C2 hold different keys' });
    if (c1Up && c2Up && c1Up.records !== c2Up.replicaRecords)
      problems.push({
        kind: 'invalid',
        line: `C1 holds ${c1Up.records} records and C2's replica ${c2Up.replicaRecords}: the replicas differ, the fast protocol refuses until an upload or delete is run again`,
      });
    out.result({ ...report, problems: problems.map((p) => p.line) }, lines.join('\n'));
    for (const p of problems) out.note(`WARNING: ${p.line}`);
    const worst = (['refused', 'unavailable', 'failure', 'invalid'] as const).find((kind) => problems.some((p) => p.kind === kind));
    if (worst)
      throw new CliError(
        worst,
        problems.filter((p) => p.kind === worst)[0].line + (problems.length > 1 ? ` (and ${problems.length - 1} more)` : ''),
      );
  } finally {
    for (const client of [c1, c2, c1Health, c2Health]) client.close();
  }
}
