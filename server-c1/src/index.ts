export * from './main';
export * from './storage';
export * from './schema';
export * from './c2-link';
export * from './admission';
