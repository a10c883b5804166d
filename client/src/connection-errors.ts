import { InterceptingCall, Metadata, status, type Interceptor, type StatusObject } from '@grpc/grpc-js';

// What a failed connection means, in words: gRPC reports every one of them as
// UNAVAILABLE with its channel's raw text ("No connection established. Last
// error: ... Resolution note:"), which names neither the daemon nor what to do.
// The CLI's clients rewrite that text here, once, for every call they make.

/** The daemon a client calls, as the CLI names it. */
export interface Peer {
  daemon: 'C1' | 'C2';
  address: string;
  /** This command's side: TLS, or plaintext by --insecure. */
  tls: boolean;
}

/** Marks a status whose details this module wrote (they name the daemon already). */
export const EXPLAINED = 'fnn-explained';

/** The one-line "WHAT. HINT" for a failure to reach `peer`, or undefined when it is the daemon's own answer. */
export function explainConnectionFailure(details: string, peer: Peer): string | undefined {
  const { daemon, address } = peer;
  const command = `\`fnn ${daemon.toLowerCase()}\``;
  // C1's own report that it cannot reach C2 carries C2's raw channel text.
  const relayed = /^C2 is unavailable \((?:UNAVAILABLE|DEADLINE_EXCEEDED|CANCELLED)\): (.*)$/s.exec(details);
  if (relayed && daemon === 'C1') {
    const why = lastError(relayed[1]);
    return `C1 at ${address} cannot reach its C2${why ? ` (${why})` : ''}. Is \`fnn c2\` running, and is C1's --c2 its address?`;
  }
  const waited = /^C2 at (\S+) is unavailable \((no connection within [^)]*)\)$/.exec(details);
  if (waited && daemon === 'C1')
    return `C1 at ${address} cannot reach its C2 at ${waited[1]} (${waited[2]}). Is \`fnn c2\` running there, and is C1's --c2 its address?`;
  if (!/No connection established|Failed to connect|Connection dropped|ECONNREFUSED|ECONNRESET/.test(details)) return undefined;
  const raw = lastError(details) ?? details;
  if (
    /self[- ]signed certificate|unable to (?:get local issuer|verify the first) certificate|certificate signature failure|unknown ca/i.test(
      raw,
    )
  )
    return `${daemon}'s certificate at ${address} is not from your CA (ca.pem of --tls-dir). Is this another deployment's ${daemon}, or the wrong --tls-dir?`;
  if (/certificate has expired|certificate is not yet valid/i.test(raw))
    return `${daemon}'s certificate at ${address} is not valid now (${/not yet/.test(raw) ? 'not yet valid' : 'expired'}). The owner issues a new one with \`fnn certs\``;
  if (/does not match certificate's altnames|Hostname\/IP does not match/i.test(raw))
    return `${daemon}'s certificate at ${address} is not for that name. Call it by a name its certificate has, or issue it for this one (fnn certs --${daemon.toLowerCase()}-host NAME)`;
  const role = /the server's certificate is for (\S+(?: FNN role)?), not (c1|c2)/.exec(raw);
  if (role) return `${address} is not ${daemon}: its certificate is for ${role[1]}. Are --c1 and --c2 swapped?`;
  if (/wrong version number|packet length too long|unknown protocol|http request/i.test(raw))
    return `${daemon} at ${address} speaks plaintext (it runs with --insecure) and this command TLS. Start both with --tls-dir, or both with --insecure`;
  // A plaintext HTTP/2 preface sent to a TLS port: the server drops it before any settings.
  if (!peer.tls && /^Failed to connect/i.test(raw))
    return `${daemon} at ${address} did not answer in plaintext (--insecure): it probably runs TLS. Pass --tls-dir DIR instead of --insecure`;
  if (/alert|handshake/i.test(raw))
    return `${daemon} at ${address} refused this command's certificate in the TLS handshake. Is --tls-dir this deployment's?`;
  if (/Connection dropped|ECONNRESET/.test(raw))
    return `${daemon} at ${address} closed the connection (${raw}). Did ${command} stop? Try again once it runs`;
  if (/ECONNREFUSED/.test(raw)) return `${daemon} at ${address} cannot be reached (connection refused). Is ${command} running there?`;
  if (/ENOTFOUND|EAI_AGAIN/.test(raw))
    return `${daemon} at ${address} cannot be reached (the host name does not resolve). Check --${daemon.toLowerCase()}`;
  if (/ETIMEDOUT|EHOSTUNREACH|ENETUNREACH/.test(raw))
    return `${daemon} at ${address} cannot be reached (no route or timed out). Is the host up and the port open to you?`;
  return `${daemon} at ${address} cannot be reached (${raw}). Is ${command} running there?`;
}

/** The channel's last error without gRPC's wrapping, its timestamps and OpenSSL's source positions. */
function lastError(details: string): string | undefined {
  const m = /Last error: (.*?)\.?\s*(?:Resolution note:.*)?$/s.exec(details);
  const text = (m ? m[1] : details)
    .replace(/^Error: /, '')
    .replace(/\s*\(\d{4}-\d\d-\d\dT[\d:.]+Z\)/, '')
    .replace(/^[0-9A-F]+:error:[0-9A-F]+:SSL routines:[^:]*:([^:]+):.*$/s, '$1')
    .trim();
  return text || undefined;
}

/** A client interceptor that rewrites a failed connection's status into words (marked EXPLAINED). */
export function explainFailures(peer: Peer): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start: (metadata, _listener, next) =>
        next(metadata, {
          onReceiveStatus: (s: StatusObject, nextStatus) => {
            const explained = s.code === status.UNAVAILABLE ? explainConnectionFailure(s.details, peer) : undefined;
            if (!explained) return nextStatus(s);
            const marked = s.metadata?.clone() ?? new Metadata();
            marked.set(EXPLAINED, '1');
            nextStatus({ ...s, details: explained, metadata: marked });
          },
        }),
    });
}

/** Whether an error's text came from explainFailures (print it as it is). */
export function isExplained(error: unknown): boolean {
  const metadata = (error as { metadata?: unknown })?.metadata;
  return metadata instanceof Metadata && metadata.get(EXPLAINED).length > 0;
}
