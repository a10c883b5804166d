// A one-line progress bar on stderr: records done/total, rate, ETA. Our own
// few lines rather than a library because upload prints a result line on
// stdout per record, and on a terminal both streams share the screen: the bar
// must step aside for each line and come back under it (docs/IMAGES.md).

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
export function progressBar(total: number, label: string, enabled: boolean, stream: BarStream = process.stderr, now = () => Date.now()): Progress {
  if (!enabled || !stream.isTTY || total <= 0) return QUIET;
  const started = now();
  let done = 0;
  let shown = false;
  const draw = () => {
    const seconds = (now() - started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const eta = rate > 0 ? (total - done) / rate : undefined;
    const text = `${done}/${total} ${label}  ${rate >= 1 ? rate.toFixed(1) : (rate * 60).toFixed(1)}/${rate >= 1 ? 's' : 'min'}  ETA ${eta === undefined ? '--' : duration(eta)}`;
    const width = Math.max(10, Math.min(30, (stream.columns || 80) - text.length - 4));
    const filled = Math.round((width * done) / total);
    stream.write(`\r\x1b[K[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}`);
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

export function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
