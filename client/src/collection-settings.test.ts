import * as wire from '@fnn/proto';
import { layoutsToWire } from '@fnn/shared';
import { describe, expect, it } from 'vitest';
import { rememberedImageOptions, rememberedLayouts, rememberedOf, type Remembered } from './collection-settings';
import { CliError } from './output';

// The rule every upload and query applies: a flag left out takes the
// collection's value, one that repeats it is fine, one that contradicts it is
// a usage error naming the stored value.

const status = (over: Partial<wire.DatabaseStatus> = {}): wire.DatabaseStatus => ({
  records: 3n,
  width: 64,
  height: 32,
  maxValue: 65535,
  keyBits: 512,
  keyFingerprint: 'fp',
  c2Reachable: true,
  layouts: layoutsToWire(['packed']),
  settings: { offset: 1024, fit: wire.Fit.FIT_CROP },
  ...over,
});

const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CliError);
    return [(error as CliError).kind, (error as Error).message];
  }
  throw new Error('not refused');
};

describe('what a collection remembers', () => {
  it("is its size, layouts and settings from C1's Status; nothing for an empty collection", () => {
    expect(rememberedOf(status())).toEqual({
      size: { width: 64, height: 32 },
      layouts: ['packed'],
      settings: { offset: 1024, fit: 'crop' },
    });
    expect(rememberedOf(status({ width: 0, height: 0, layouts: [], settings: undefined }))).toEqual({});
    // A collection stored before the settings were kept: its size and layouts only.
    expect(rememberedOf(status({ settings: undefined }))).toEqual({ size: { width: 64, height: 32 }, layouts: ['packed'] });
  });
});

describe('rememberedImageOptions', () => {
  const remembered: Remembered = rememberedOf(status());

  it('gives flags left out the stored values', () => {
    expect(rememberedImageOptions({ axis: 'z' }, remembered)).toEqual({
      rule: { offset: 1024 },
      size: { width: 64, height: 32 },
      fit: 'crop',
      axis: 'z',
      fitRemembered: true,
    });
  });

  it('accepts flags that repeat the stored values', () => {
    expect(rememberedImageOptions({ offset: '1024', size: '64x32', fit: 'crop' }, remembered)).toMatchObject({
      rule: { offset: 1024 },
      fit: 'crop',
    });
  });

  it.each([
    [{ offset: '0' }, 'this collection was created with --offset 1024; drop --offset or pass 1024'],
    [{ fit: 'refuse' }, 'this collection was created with --fit crop; drop --fit or pass crop'],
    [{ size: '32x32' }, "this collection's images are 64x32; drop --size or pass 64x32"],
  ])('refuses %o as a usage error naming the stored value', (flags, message) => {
    expect(refusal(() => rememberedImageOptions(flags, remembered))).toEqual(['usage', message]);
  });

  it('a new collection takes the flags, or 0 and refuse', () => {
    expect(rememberedImageOptions({}, {})).toEqual({ rule: { offset: 0 }, size: undefined, fit: 'refuse', axis: 'z' });
    expect(rememberedImageOptions({ offset: '-5', size: '8x8', fit: 'crop' }, {})).toMatchObject({
      rule: { offset: -5 },
      size: { width: 8, height: 8 },
      fit: 'crop',
    });
  });

  it('a collection without stored settings takes the flags as given, its size still checked', () => {
    const old = rememberedOf(status({ settings: undefined }));
    expect(rememberedImageOptions({ offset: '7' }, old)).toMatchObject({
      rule: { offset: 7 },
      fit: 'refuse',
      size: { width: 64, height: 32 },
    });
    expect(refusal(() => rememberedImageOptions({ size: '1x1' }, old))[0]).toBe('usage');
    expect(rememberedImageOptions({}, old).fitRemembered, 'its fit is not known: a refusal may suggest --fit crop').toBeUndefined();
  });
});

describe('rememberedLayouts', () => {
  const fastOnly = rememberedOf(status());
  const paper = rememberedOf(status({ layouts: layoutsToWire(['packed', 'paper']) }));

  it("takes the collection's layouts when neither flag is given, both for a new collection", () => {
    expect(rememberedLayouts(undefined, fastOnly)).toEqual(['packed']);
    expect(rememberedLayouts(undefined, paper)).toEqual(['packed', 'paper']);
    expect(rememberedLayouts(undefined, {})).toEqual(['packed', 'paper']);
    expect(rememberedLayouts(false, {})).toEqual(['packed']);
    expect(rememberedLayouts(false, fastOnly)).toEqual(['packed']);
    expect(rememberedLayouts(true, paper)).toEqual(['packed', 'paper']);
  });

  it('refuses a flag that contradicts the stored layout, naming it', () => {
    expect(refusal(() => rememberedLayouts(true, fastOnly))).toEqual([
      'usage',
      'this collection was created with --no-paper-layout (it answers only --protocol fast); drop --paper-layout',
    ]);
    expect(refusal(() => rememberedLayouts(false, paper))).toEqual([
      'usage',
      "this collection was created with the paper's per-pixel layout; drop --no-paper-layout",
    ]);
  });
});
