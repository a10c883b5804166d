import { describe, expect, it } from 'vitest';
import { allowedHosts, isLoopback, refusal, TOKEN_HEADER } from './guard';

const TOKEN = 'a'.repeat(64);
const hosts = allowedHosts('127.0.0.1', 8080);
const ask = (method: string, headers: Record<string, string>, queryToken?: string) =>
  refusal({ method, headers: { host: '127.0.0.1:8080', ...headers }, queryToken }, TOKEN, hosts);

describe('the viewer guard', () => {
  it('lets the page through with its token, in the query for a GET or in the header', () => {
    expect(ask('GET', {}, TOKEN)).toBeUndefined();
    expect(ask('POST', { [TOKEN_HEADER]: TOKEN, origin: 'http://127.0.0.1:8080', 'sec-fetch-site': 'same-origin' })).toBeUndefined();
    expect(ask('GET', { host: 'localhost:8080' }, TOKEN)).toBeUndefined();
  });

  it('refuses a missing or wrong token, and a POST whose token is only in the URL', () => {
    expect(ask('GET', {})).toMatch(/token is missing or wrong/);
    expect(ask('GET', {}, 'b'.repeat(64))).toMatch(/token/);
    expect(ask('GET', {}, TOKEN.slice(1))).toMatch(/token/);
    expect(ask('POST', {}, TOKEN)).toMatch(/token/);
  });

  it('refuses other sites and host names that are not where it listens (DNS rebinding)', () => {
    expect(ask('GET', { origin: 'http://evil.example' }, TOKEN)).toMatch(/other sites/);
    expect(ask('GET', { origin: 'https://127.0.0.1:8080' }, TOKEN)).toMatch(/other sites/);
    expect(ask('GET', { 'sec-fetch-site': 'cross-site' }, TOKEN)).toMatch(/other sites/);
    expect(ask('GET', { host: 'evil.example:8080' }, TOKEN)).toMatch(/address it printed/);
    expect(ask('GET', { host: '127.0.0.1:8081' }, TOKEN)).toMatch(/address it printed/);
  });

  it('knows loopback names, and answers a non-loopback address by that address only', () => {
    expect(['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost'].every(isLoopback)).toBe(true);
    expect(['0.0.0.0', '10.0.0.2', 'example.org'].some(isLoopback)).toBe(false);
    expect([...allowedHosts('10.0.0.2', 9000)]).toEqual(['10.0.0.2:9000']);
  });
});
