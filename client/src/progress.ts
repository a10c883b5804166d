// A one-line progress bar on stderr: records done/total, rate, ETA. Our own
// few lines rather than a library because upload prints a result line on
// stdout per record, and on a terminal both streams share the screen: the bar
// must step aside for each line and come back under it (docs/IMAGES.md).
// `fnn query` draws the same bar for the phases C1 reports while it searches.

import type { QueryPhase, QueryProgress } from '@fnn/shared';

export interface Progress {
  /** One more record finished (stored or failed). */
  tick(count?: number): void;
  /** Print a line without tearing the bar: erase it, print, redraw. */
  around(print: () => void): void;
  /** Erase the bar for good. */
  stop(): void;
}

interface BarStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

const QUIET: Progress = { tick: () => {}, around: (print) => print(), stop: () => {} };

/** Drawn only on a terminal; `enabled` false (e.g. --json) or a pipe gives a no-op. */
export function progressBar(
  total: number,
  label: string,
  enabled: boolean,
  stream: BarStream = process.stderr,
  now = () => Date.now(),
): Progress {
  if (!enabled || !stream.isTTY || total <= 0) return QUIET;
  const started = now();
  let done = 0;
  let shown = false;
  const draw = () => {
    const seconds = (now() - started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const eta = rate > 0 ? (total - done) / rate : undefined;
    const text = `${done}/${total} ${label}  ${rate >= 1 ? rate.toFixed(1) : (rate * 60).toFixed(1)}/${rate >= 1 ? 's' : 'min'}  ETA ${eta === undefined ? '--' : duration(eta)}`;
    drawBar(stream, done, total, text);
    shown = true;
  };
  const erase = () => {
    if (shown) stream.write('\r\x1b[K');
    shown = false;
  };
  // Encrypting one image can take seconds: keep the clock and ETA moving.
  const timer = setInterval(draw, 1000);
  timer.unref();
  draw();
  return {
    tick(count = 1) {
      done = Math.min(total, done + count);
      draw();
    },
    around(print) {
      erase();
      print();
      draw();
    },
    stop() {
      clearInterval(timer);
      erase();
    },
  };
}

function drawBar(stream: BarStream, done: number, total: number, text: string): void {
  const width = Math.max(10, Math.min(30, (stream.columns || 80) - text.length - 4));
  const filled = total > 0 ? Math.round((width * Math.min(done, total)) / total) : 0;
  stream.write(`\r\x1b[K[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}`);
}

export interface QueryProgressView {
  /** C1's latest report. */
  show(progress: QueryProgress): void;
  /** Erase the bar for good (before the result is printed). */
  stop(): void;
}

const PHASE_LABEL: Record<QueryPhase, string> = {
  'lower-bounds': 'lower bounds',
  candidates: 'candidates',
  distances: 'distances',
};

/**
 * One query's progress as C1 reports it: phase, done/total (`unit`: records,
 * or groups for the fast protocol), records rejected so far, time elapsed.
 * No ETA: how many candidates survive the bound is unknown until the end.
 */
export function queryProgressBar(
  unit: string,
  enabled: boolean,
  stream: BarStream = process.stderr,
  now = () => Date.now(),
): QueryProgressView {
  if (!enabled || !stream.isTTY) return { show: () => {}, stop: () => {} };
  const started = now();
  let last: QueryProgress | undefined;
  const draw = () => {
    const elapsed = duration((now() - started) / 1000);
    if (!last) return void stream.write(`\r\x1b[Ksearching  ${elapsed}`);
    const rejected = last.rejected > 0 ? `  ${last.rejected} records rejected` : '';
    drawBar(stream, last.done, last.total, `${PHASE_LABEL[last.phase]} ${last.done}/${last.total} ${unit}${rejected}  ${elapsed}`);
  };
  // Between C1's reports (a phase can take minutes at 2048 bits), keep the clock moving.
  const timer = setInterval(draw, 1000);
  timer.unref();
  draw();
  return {
    show(progress) {
      last = progress;
      draw();
    },
    stop() {
      clearInterval(timer);
      stream.write('\r\x1b[K');
    },
  };
}

export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
