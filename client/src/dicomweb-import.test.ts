import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type * as wire from '@fnn/proto';
import { RecordKey } from '@fnn/shared';
import { dicomWebImport, pacsOpener, storedInstances } from './dicomweb-import';
import type { InstanceRef } from './dicomweb';
import { CliError } from './output';

// What `fnn upload --dicomweb` does around the DICOMweb client: its flags,
// which instances count as stored, and how often an instance is fetched.

const TESTDATA = join(__dirname, '..', '..', 'shared', 'src', 'image', 'testdata');
const ref = (sop: string, frames?: number): InstanceRef => ({ study: '1.2', series: '1.2.3', sop, frames });

describe('--dicomweb flags', () => {
  const url = 'http://127.0.0.1:8042/dicom-web';
  it('takes exactly one of --study, --series and --all, with UIDs and --since checked', () => {
    expect(dicomWebImport({ dicomweb: url, study: ['1.2.3', '1.2.4'] }).filter).toEqual({ selection: { studies: ['1.2.3', '1.2.4'] } });
    expect(dicomWebImport({ dicomweb: url, all: true, since: '2024-01-31' })).toMatchObject({
      filter: { selection: { all: true }, since: '20240131' },
      describe: '--all --since 2024-01-31',
    });
    for (const flags of [{}, { all: true, series: ['1.2'] }, { study: ['../x'] }, { all: true, since: '31/01/2024' }])
      expect(() => dicomWebImport({ dicomweb: url, ...flags })).toThrow(CliError);
  });
});

/** A C1 whose AllocateSlots marks `stored` the tags of `held` IDs, and counts its calls. */
function fakeC1(key: RecordKey, held: string[]) {
  const tags = new Set(held.map((id) => key.lookupTag(id).toString('hex')));
  const calls: wire.AllocateSlotsRequest[] = [];
  const c1 = {
    allocateSlots: (req: wire.AllocateSlotsRequest, _m: unknown, _o: unknown, cb: (e: null, r: wire.SlotAssignments) => void) => {
      calls.push(req);
      cb(null, {
        slots: req.lookupTags.map((t) => ({ group: 0, slot: 0, stored: tags.has(Buffer.from(t).toString('hex')) })),
        collectionId: Buffer.alloc(16),
      });
      return {};
    },
  } as unknown as Pick<wire.DatabaseClient, 'allocateSlots'>;
  return { c1, calls };
}

describe('instances already stored', () => {
  const key = new RecordKey(randomBytes(32));
  const shape = { width: 64, height: 64, maxValue: 65535 };

  it('are those whose every record C1 holds: all frames of a multi-frame instance', async () => {
    const { c1, calls } = fakeC1(key, ['1.1', '1.2#frame1', '1.2#frame2', '1.2#frame3', '1.3#frame1']);
    const held = await storedInstances(c1, key, shape, [ref('1.1'), ref('1.2', 3), ref('1.3', 2), ref('1.4')]);
    expect([...held].sort()).toEqual(['1.1', '1.2']);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ width: 64, height: 64, maxValue: 65535 });
    expect(calls[0].lookupTags).toHaveLength(1 + 3 + 2 + 1);
  });

  it('are not asked of an empty collection, where AllocateSlots would fix the collection id', async () => {
    const { c1, calls } = fakeC1(key, []);
    expect((await storedInstances(c1, key, { width: 0, height: 0, maxValue: 0 }, [ref('1.1')])).size).toBe(0);
    expect(calls).toHaveLength(0);
  });
});

describe('fetching for the two passes', () => {
  const bytes = readFileSync(join(TESTDATA, 'MR_small.dcm'));
  const counting = () => {
    const fetches: string[] = [];
    return { fetches, client: { fetchInstance: async (r: InstanceRef) => (fetches.push(r.sop), bytes) } };
  };

  it('fetches each instance once for the plan and the sending, and decodes it as a file', async () => {
    const { fetches, client } = counting();
    let ticks = 0;
    const open = pacsOpener(client, [ref('1.1'), ref('1.2')], () => ticks++);
    for (const pass of [1, 2])
      for (const sop of ['1.1', '1.2']) {
        const stack = await open(sop, { axis: 'z' });
        expect(stack, `pass ${pass}`).toMatchObject({ name: sop, width: 64, height: 64, count: 1 });
      }
    expect(fetches).toEqual(['1.1', '1.2']);
    expect(ticks).toBe(2);
  });

  it('fetches again what did not fit in the kept bytes', async () => {
    const { fetches, client } = counting();
    const open = pacsOpener(client, [ref('1.1'), ref('1.2')], () => {}, bytes.length);
    for (const sop of ['1.1', '1.2', '1.1', '1.2']) await open(sop, { axis: 'z' });
    expect(fetches).toEqual(['1.1', '1.2', '1.2']);
  });
});
