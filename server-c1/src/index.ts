export * from './main';
export * from './storage';
export * from './schema';
export * from './key-holder-link';
