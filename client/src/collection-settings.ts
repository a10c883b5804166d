import type * as wire from '@fnn/proto';
import { layoutsFromWire, settingsFromWire, type CollectionSettings, type Layout } from '@fnn/shared';
import { parseImageOptions, type ImageFlags, type ImageOptions } from './image-files';
import { CliError } from './output';

// A collection remembers how it was made (docs/IMAGES.md, "A collection
// remembers"): its size, layouts, offset and fit rule, reported by C1's
// Status. Every upload and query applies them before any key is used on an
// image: a flag left out takes the stored value, a flag that repeats it is
// fine, a flag that contradicts it is a usage error naming the stored value.
// Without this, a doctor who forgets --offset gets shifted distances and no error.

/** What C1 says the collection was made with; a part is absent while the collection is empty (or, for the settings, from before they were kept). */
export interface Remembered {
  size?: { width: number; height: number };
  layouts?: Layout[];
  settings?: CollectionSettings;
}

export function rememberedOf(status: wire.DatabaseStatus): Remembered {
  if (!status.width) return {};
  return {
    size: { width: status.width, height: status.height },
    layouts: layoutsFromWire(status.layouts),
    ...(status.settings ? { settings: settingsFromWire(status.settings) } : {}),
  };
}

const contradiction = (setting: string, stored: string, flag: string) =>
  new CliError('usage', `this collection was created with ${setting}; drop ${flag} or pass ${stored}`);

/**
 * A command's image options: its flags (undefined where not given: a
 * default is not a choice) over what the collection remembers.
 */
export function rememberedImageOptions(flags: ImageFlags, remembered: Remembered): ImageOptions {
  const given = parseImageOptions(flags);
  const { size, settings } = remembered;
  if (size && given.size && (given.size.width !== size.width || given.size.height !== size.height)) {
    const text = `${size.width}x${size.height}`;
    throw new CliError('usage', `this collection's images are ${text}; drop --size or pass ${text}`);
  }
  if (settings && flags.offset !== undefined && given.rule.offset !== settings.offset)
    throw contradiction(`--offset ${settings.offset}`, String(settings.offset), '--offset');
  if (settings && flags.fit !== undefined && given.fit !== settings.fit)
    throw contradiction(`--fit ${settings.fit}`, settings.fit, '--fit');
  return {
    ...given,
    size: size ?? given.size,
    rule: { offset: flags.offset === undefined && settings ? settings.offset : given.rule.offset },
    fit: flags.fit === undefined && settings ? settings.fit : given.fit,
    ...(settings ? { fitRemembered: true } : {}),
  };
}

/**
 * What an upload stores: `paperLayout` is --paper-layout (true),
 * --no-paper-layout (false) or neither (undefined: the collection's layouts,
 * and both for a new collection so that every protocol can run).
 */
export function rememberedLayouts(paperLayout: boolean | undefined, remembered: Remembered): Layout[] {
  const stored = remembered.layouts;
  if (stored && paperLayout !== undefined && stored.includes('paper') !== paperLayout) {
    throw stored.includes('paper')
      ? new CliError('usage', "this collection was created with the paper's per-pixel layout; drop --no-paper-layout")
      : new CliError('usage', 'this collection was created with --no-paper-layout (it answers only --protocol fast); drop --paper-layout');
  }
  if (stored) return stored.includes('paper') ? ['packed', 'paper'] : ['packed'];
  return paperLayout === false ? ['packed'] : ['packed', 'paper'];
}
