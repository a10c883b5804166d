export * from './checksums';
export * from './collection-database';
export * from './collections';
export * from './handlers';
export * from './limits';
export * from './daemon';
export * from './audit';
export * from './metrics';
