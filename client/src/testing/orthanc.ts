import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

// A real PACS for the DICOMweb import tests: Debian's Orthanc with its
// DICOMweb plugin (packages orthanc and orthanc-dicomweb), started on a free
// localhost port with its own storage and its own users, stopped by the test.

const ORTHANC = '/usr/sbin/Orthanc';
const READY_TIMEOUT_MS = 30_000;

/** The DICOMweb plugin the Debian package installs, or undefined. */
function dicomWebPlugin(): string | undefined {
  const listed = spawnSync('dpkg', ['-L', 'orthanc-dicomweb'], { encoding: 'utf8' });
  if (listed.status !== 0) return undefined;
  return listed.stdout.split('\n').find((f) => /\/libOrthancDicomWeb\.so(\.[\d.]+)?$/.test(f) && existsSync(f));
}

/** Why the tests cannot start Orthanc here (the packages are missing), or undefined when they can. */
export function orthancMissing(): string | undefined {
  if (!existsSync(ORTHANC)) return `no ${ORTHANC}: install the Debian packages orthanc and orthanc-dicomweb (CI does)`;
  if (!dicomWebPlugin()) return 'no DICOMweb plugin: install the Debian package orthanc-dicomweb (CI does)';
  return undefined;
}

export interface Orthanc {
  /** The DICOMweb root, e.g. http://127.0.0.1:PORT/dicom-web. */
  dicomweb: string;
  /** The REST API's root. */
  rest: string;
  user: string;
  password: string;
  /** A DICOM file stored through the REST API (POST /instances); its Orthanc status. */
  store(bytes: Buffer): Promise<string>;
  stop(): Promise<void>;
  log(): string;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Orthanc in `dir` (storage, index, config), ready: its REST API has answered. */
export async function startOrthanc(dir: string): Promise<Orthanc> {
  const plugin = dicomWebPlugin();
  if (!plugin) throw new Error(orthancMissing());
  mkdirSync(join(dir, 'storage'), { recursive: true });
  const user = 'fnn-test';
  const password = `pw-${process.pid}-${Date.now()}`;
  // The port is free when asked and taken by Orthanc a moment later: another
  // process may win it in between, so a failed start is tried on another port.
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const config = join(dir, 'orthanc.json');
    writeFileSync(
      config,
      JSON.stringify({
        Name: 'fnn-test',
        HttpPort: port,
        DicomServerEnabled: false,
        StorageDirectory: join(dir, 'storage'),
        IndexDirectory: join(dir, 'storage'),
        RemoteAccessAllowed: false,
        AuthenticationEnabled: true,
        RegisteredUsers: { [user]: password },
        Plugins: [plugin],
        DicomWeb: { Enable: true, Root: '/dicom-web/' },
      }),
    );
    const child = spawn(ORTHANC, [config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (b) => (log += b));
    child.stderr.on('data', (b) => (log += b));
    let exited = false;
    const exit = new Promise<void>((r) =>
      child.on('exit', () => {
        exited = true;
        r();
      }),
    );
    const rest = `http://127.0.0.1:${port}`;
    const authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    const stop = async () => {
      if (!exited) child.kill('SIGTERM');
      await exit;
    };
    // Bounded polling of GET /system: Orthanc answers once its plugins are loaded.
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let ready = false;
    while (!exited && Date.now() < deadline) {
      try {
        const r = await fetch(`${rest}/system`, { headers: { authorization }, signal: AbortSignal.timeout(2000) });
        await r.body?.cancel();
        if (r.ok) {
          ready = true;
          break;
        }
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!ready) {
      await stop();
      lastError = new Error(`Orthanc did not start on port ${port}: ${log.trim().split('\n').slice(-3).join(' | ')}`);
      continue;
    }
    return {
      dicomweb: `${rest}/dicom-web`,
      rest,
      user,
      password,
      async store(bytes) {
        const r = await fetch(`${rest}/instances`, {
          method: 'POST',
          headers: { authorization, 'content-type': 'application/dicom' },
          body: new Uint8Array(bytes),
        });
        const reply = (await r.json()) as { Status?: string; Message?: string };
        if (!r.ok) throw new Error(`Orthanc refused an instance: ${r.status} ${reply.Message ?? ''}`);
        return reply.Status ?? '';
      },
      stop,
      log: () => log,
    };
  }
  throw lastError!;
}
