export * from './main';
export * from './replica-store';
