import { describe, expect, it } from 'vitest';
import { windowed } from './sheet';

// The sheet draws a record with its DICOM window: PS3.3 C.11.2.1.2.1's linear
// function, on the stored value less the collection's offset.

describe('windowed', () => {
  it('maps below the window to black, above to white, the centre to mid-gray, after taking off the offset', () => {
    // CT in Hounsfield units stored with --offset 1024; a brain window W 80 / L 40.
    const hu = [-1000, 0, 40, 79, 80, 3000];
    const image = { width: hu.length, height: 1, maxValue: 65535, pixels: Uint16Array.from(hu, (v) => v + 1024) };
    const shown = windowed(image, 40, 80, 1024);
    expect(shown.maxValue).toBe(255);
    expect(Array.from(shown.pixels)).toEqual([0, 0, 129, 255, 255, 255]);
    // Without the offset taken off, -1000 HU (stored 24) would fall inside the window.
    expect(Array.from(windowed(image, 40, 80, 0).pixels)).toEqual([77, 255, 255, 255, 255, 255]);
  });
});
