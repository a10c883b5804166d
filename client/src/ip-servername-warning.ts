// grpc-js names the TLS server by the address it dials, so dialling an IP
// address (127.0.0.1:50051) makes Node warn (DEP0123) on every connection. The
// certificate is still checked against that IP (its subjectAltName), so the
// warning says nothing to act on: drop that one, keep every other. Imported
// for this effect by the programs that dial daemons (main.ts, demo.ts).
const emitWarning = process.emitWarning.bind(process) as (...args: unknown[]) => void;
process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
  const code = typeof rest[0] === 'object' ? (rest[0] as { code?: string } | null)?.code : rest[1];
  if (code !== 'DEP0123') emitWarning(warning, ...rest);
}) as typeof process.emitWarning;

export {};
