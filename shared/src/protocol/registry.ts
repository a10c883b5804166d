import { invalidInput } from '../errors';
import type { SessionFamily } from './messages';
import type { ProtocolModule, ProtocolName, WireQuery } from './module';
import { fastProtocol } from './fast';
import { bfProtocol, fnnProtocol } from './paper';

// The one map from a protocol's name to its module. The daemons and the CLI
// find a protocol here and call its sides; nothing else names a protocol.
// Adding a protocol: its folder, its messages in fnn.proto, one line below.

const MODULES: Record<ProtocolName, ProtocolModule> = {
  fast: fastProtocol,
  fnn: fnnProtocol,
  bf: bfProtocol,
};

/** The default protocol of a query that names none (the CLI's --protocol default). */
export const DEFAULT_PROTOCOL: ProtocolName = 'fast';

/** Every protocol's name, the default first. */
export const PROTOCOL_NAMES = Object.keys(MODULES) as ProtocolName[];

export function isProtocolName(name: string): name is ProtocolName {
  return Object.hasOwn(MODULES, name);
}

export function protocolModule(name: ProtocolName): ProtocolModule {
  return MODULES[name];
}

/** The module a query's oneof names; a request that names none is refused. */
export function protocolOfQuery(query: WireQuery | undefined): ProtocolModule {
  if (!query || !isProtocolName(query.$case)) throw invalidInput('the query names no protocol');
  return MODULES[query.$case];
}

/** A protocol whose C2 side opens a session of this family (fnn and bf share the paper's: either serves). */
export function sessionOpenedBy(family: SessionFamily): ProtocolModule | undefined {
  return Object.values(MODULES).find((m) => m.c2.family === family);
}
