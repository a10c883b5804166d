// The logging surface the daemons need; the CLI provides it (pino). Only
// operational facts go here: ids, counts, timings, status codes. Never a key,
// pixel, distance, share or ciphertext.
export interface Logger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  child(fields: object): Logger;
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = {
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};
