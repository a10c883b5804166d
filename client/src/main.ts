#!/usr/bin/env node
import { Command, Option } from 'commander';
import pino from 'pino';
import { DEFAULT_MAX_COLLECTIONS } from '@fnn/server-common';
import { DEFAULT_PROTOCOL, PROTOCOL_NAMES, protocolModule, ROLES, type Logger, type Role } from '@fnn/shared';
import { audit } from './commands/audit';
import { runC1, runC2, type C1Flags, type C2Flags } from './commands/daemons';
import { deleteRecords } from './commands/delete';
import { keygen } from './commands/keygen';
import { batchQuery, query } from './commands/query';
import { health } from './commands/health';
import { check, repair } from './commands/replicas';
import { collections } from './commands/collections';
import { status } from './commands/status';
import { upload } from './commands/upload';
import { viewer } from './commands/viewer';
import './ip-servername-warning';
import { withConfigFile } from './config-file';
import { classify, CliError, makeOutput, jsonLine } from './output';
import { transportFrom, type TransportFlags } from './tls-files';
import { oneLineUsageErrors } from './usage-errors';

// Every address and path can also come from the environment, so the daemons
// can run under a service manager:
//   FNN_KEYS (key directory), FNN_C1 / FNN_C2 (addresses to call),
//   FNN_C1_LISTEN / FNN_C2_LISTEN (addresses to bind), FNN_DB (C1's database),
//   FNN_LOG_LEVEL (daemon log level: info by default), FNN_MAX_MESSAGE_BYTES
//   (the gRPC message limit, lowered from 64 MiB), FNN_TLS_DIR (this
//   party's certificate directory) or FNN_TLS_CA / FNN_TLS_CERT / FNN_TLS_KEY,
//   FNN_TLS_CRL (the daemons' revocation list), FNN_AUDIT (a daemon's audit trail),
//   FNN_CONFIG (a daemon's config file), FNN_METRICS (a daemon's /metrics address).

const env = (name: string) => process.env[name];
const keys = () =>
  new Option('--keys <dir>', "key directory: this party's from `fnn keygen` (or its whole output on one machine)")
    .env('FNN_KEYS')
    .default('keys');
// Accepted where no key is read, so one set of connection flags works with every command.
const unusedKeys = () => new Option('--keys <dir>', 'accepted and not used by this command').env('FNN_KEYS');
const c1 = () => new Option('--c1 <host:port>', 'C1 address').env('FNN_C1');
const c2 = () => new Option('--c2 <host:port>', 'C2 address').env('FNN_C2');
const json = () => new Option('--json', 'one JSON object per line');
// Which of the deployment's collections a command works on (collections.ts); a new one is created by its first upload.
const collection = () =>
  new Option('--collection <name>', 'the collection (see `fnn collections`); default: the collection "default"').env('FNN_COLLECTION');
const auditFile = () =>
  new Option('--audit <file>', "the daemon's audit trail, appended (default: beside --db, <db>.audit.jsonl)").env('FNN_AUDIT');
const maxCollections = () =>
  new Option('--max-collections <n>', 'collections this daemon holds at most, the default one included; the next is refused')
    .env('FNN_MAX_COLLECTIONS')
    .default(String(DEFAULT_MAX_COLLECTIONS));
const metrics = () =>
  new Option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (port 0: a free port; off by default)').env(
    'FNN_METRICS',
  );
// Every connection is TLS with this party's certificate, or plaintext with an explicit --insecure.
const tlsOptions = (cmd: Command) =>
  cmd
    .addOption(new Option('--tls-dir <dir>', "this party's directory from `fnn certs`: ca.pem, cert.pem, key.pem").env('FNN_TLS_DIR'))
    .addOption(new Option('--tls-ca <file>', 'the deployment CA certificate (instead of DIR/ca.pem)').env('FNN_TLS_CA'))
    .addOption(new Option('--tls-cert <file>', "this party's certificate (instead of DIR/cert.pem)").env('FNN_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', "this party's private key, mode 0600 (instead of DIR/key.pem)").env('FNN_TLS_KEY'))
    .option('--insecure', 'plaintext: no TLS, no certificates, no role checks (tests; never between hospitals)');
const tlsCrl = () =>
  new Option(
    '--tls-crl <file>',
    'the CRL of revoked certificates (default: DIR/crl.pem of --tls-dir, when there); re-read on change and SIGHUP',
  ).env('FNN_TLS_CRL');
type TlsFlags = { insecure?: boolean; tlsDir?: string; tlsCa?: string; tlsCert?: string; tlsKey?: string };
/** The command's options with the transport its flags name, for a party in one of `roles`. */
const secured = <O extends TlsFlags>(o: O, roles: readonly Role[]) => {
  const flags: TransportFlags = { insecure: o.insecure, tlsDir: o.tlsDir, ca: o.tlsCa, cert: o.tlsCert, key: o.tlsKey };
  return { ...o, transport: transportFrom(flags, roles) };
};
// The CLI takes an owner's or a doctor's certificate for every call; the daemons decide what each may do.
const CLIENTS: readonly Role[] = ['owner', 'doctor'];
// How images become the stored integers and the collection's size: a
// collection's first upload fixes them, and every later upload and query
// takes them from C1 (collection-settings.ts, docs/IMAGES.md). No defaults
// here: a flag left out takes the collection's value, never a default.
const imageOptions = (cmd: Command) =>
  cmd
    .option(
      '--offset <n>',
      "added to every pixel after the file's rescale (e.g. 1024 for CT in Hounsfield units); default: the collection's, 0 for a new one",
    )
    .option('--size <WxH>', "the collection's image size, e.g. 256x256; default: the collection's, its first stored image's for a new one")
    .addOption(
      new Option(
        '--fit <mode>',
        "an image of another size: refuse, or center-crop/pad with 0 to the collection's size; default: the collection's, refuse for a new one",
      ).choices(['refuse', 'crop']),
    )
    .addOption(new Option('--axis <axis>', 'NIfTI volumes: the voxel axis to slice along').choices(['x', 'y', 'z']).default('z'));

const program = new Command('fnn')
  .description('Exact nearest-neighbour search over encrypted medical images (two non-colluding servers)')
  .exitOverride();

/** Run a command: its failure is one line on stderr (or a JSON object) and a documented exit code. */
function action<A extends unknown[]>(fn: (...args: A) => Promise<void>) {
  return async (...args: A) => {
    const opts = args.find((a) => a && typeof a === 'object' && !Array.isArray(a) && !(a instanceof Command)) as
      { json?: boolean } | undefined;
    try {
      await fn(...args);
    } catch (error) {
      const { code, reason } = classify(error);
      if (opts?.json) process.stdout.write(jsonLine({ error: reason, exitCode: code }) + '\n');
      process.stderr.write(`fnn: ${reason}\n`);
      process.exitCode = code;
    }
  };
}

function daemonLogger(role: string): Logger {
  return pino({ name: `fnn-${role}`, level: env('FNN_LOG_LEVEL') ?? 'info' }, pino.destination(2)) as unknown as Logger;
}

program
  .command('keygen')
  .description("create two Paillier key pairs (C2's and C1's, g = N+1) and the record key k, one directory per party to copy to it")
  .requiredOption('--out <dir>', 'directory to write c1/, c2/, owner/ and doctor/ into (refuses to overwrite)')
  .option('--bits <n>', 'Paillier modulus size', '2048')
  .addOption(json())
  .action(action(async (o: { out: string; bits: string; json?: boolean }) => keygen(makeOutput(!!o.json), o)));

// Loaded on demand: the X.509 encoder is needed by these commands only.
const certsCommand = () => import('./commands/certs.js');
const certsDir = () =>
  new Option('--dir <dir>', "the directory `fnn certs init` wrote, with the CA key (the owner's)").makeOptionMandatory();
const certs = program
  .command('certs')
  .description('the deployment CA and its certificates: init (the default), issue, revoke, list, crl; see fnn certs CMD --help');
certs
  .command('init', { isDefault: true })
  .description('issue the deployment CA and certificates for C1, C2, the owner and a doctor (one directory each)')
  .requiredOption('--out <dir>', 'directory to write them into (refuses to overwrite)')
  .option('--c1-host <name...>', 'DNS names or IP addresses C1 is reached at (default: localhost, 127.0.0.1, ::1)')
  .option('--c2-host <name...>', 'DNS names or IP addresses C2 is reached at (default: localhost, 127.0.0.1, ::1)')
  .option('--days <n>', "validity of the parties' certificates", '825')
  .addOption(json())
  .action(
    action(async (o: { out: string; c1Host?: string[]; c2Host?: string[]; days: string; json?: boolean }) =>
      (await certsCommand()).certs(makeOutput(!!o.json), o),
    ),
  );
certs
  .command('issue')
  .description("a person's certificate (CN = name, OU = role) from the CA in --dir, into a directory for their --tls-dir")
  .addOption(certsDir())
  .addOption(new Option('--role <role>', 'what they may do').choices(['doctor', 'owner']).makeOptionMandatory())
  .requiredOption('--name <name>', `who they are, as logs and the audit trail name them (up to 64 characters)`)
  .option('--days <n>', 'validity', '825')
  .option('--out <dir>', 'their directory (default: DIR/people/NAME)')
  .option('--replace', 'revoke their live certificate and issue another (a lost key, another role)')
  .addOption(json())
  .action(
    action(
      async (o: { dir: string; role: 'doctor' | 'owner'; name: string; days: string; out?: string; replace?: boolean; json?: boolean }) =>
        (await certsCommand()).issue(makeOutput(!!o.json), o),
    ),
  );
certs
  .command('revoke')
  .description('revoke a certificate by its name or serial: writes the CRL (DIR/crl.pem, DIR/c1/, DIR/c2/) the daemons enforce')
  .argument('<name-or-serial>', 'a name from `fnn certs list`, or a serial (hex)')
  .addOption(certsDir())
  .addOption(json())
  .action(
    action(async (nameOrSerial: string, o: { dir: string; json?: boolean }) =>
      (await certsCommand()).revoke(makeOutput(!!o.json), nameOrSerial, o),
    ),
  );
certs
  .command('list')
  .description('every certificate the CA issued: name, role, serial, valid until, revoked')
  .addOption(certsDir())
  .addOption(json())
  .action(action(async (o: { dir: string; json?: boolean }) => (await certsCommand()).list(makeOutput(!!o.json), o)));
certs
  .command('crl')
  .description('sign the CRL again from the register (a new number): before it is a year old, or after a cut-short revoke')
  .addOption(certsDir())
  .addOption(json())
  .action(action(async (o: { dir: string; json?: boolean }) => (await certsCommand()).crl(makeOutput(!!o.json), o)));

tlsOptions(
  program
    .command('c2')
    .description('run C2, the key holder')
    .addOption(new Option('--listen <host:port>', 'address to bind (port 0: a free port)').env('FNN_C2_LISTEN').default('127.0.0.1:50052'))
    .addOption(
      new Option('--db <file>', "SQLite replica of the packed records (fast protocol); other collections' beside it, in FILE.collections/")
        .env('FNN_C2_DB')
        .default('fnn-c2.db'),
    )
    .addOption(maxCollections())
    .addOption(auditFile())
    .addOption(keys())
    .addOption(tlsCrl())
    .addOption(metrics()),
).action(action(async (o: C2Flags & TlsFlags) => runC2(daemonLogger('c2'), secured(o, ['c2']))));

tlsOptions(
  program
    .command('c1')
    .description('run C1, the encrypted database')
    .addOption(new Option('--listen <host:port>', 'address to bind (port 0: a free port)').env('FNN_C1_LISTEN').default('127.0.0.1:50051'))
    .addOption(
      new Option('--db <file>', "SQLite database of the default collection; other collections' beside it, in FILE.collections/")
        .env('FNN_DB')
        .default('fnn-c1.db'),
    )
    .addOption(maxCollections())
    .addOption(auditFile())
    .addOption(keys())
    .addOption(c2().default('127.0.0.1:50052'))
    .addOption(
      new Option('--query-timeout <seconds>', "longest a query may run at C1 and C2 (the paper's protocols at 256x256 take longer)")
        .env('FNN_QUERY_TIMEOUT')
        .default('3600'),
    )
    .addOption(tlsCrl())
    .addOption(metrics()),
).action(action(async (o: C1Flags & TlsFlags) => runC1(daemonLogger('c1'), secured(o, ['c1']))));

tlsOptions(
  imageOptions(
    program
      .command('upload')
      .description(
        "encrypt images and upload them to C1 (record ID = a DICOM's SOP Instance UID, else the file name; #frameN / #z012 for DICOM frames and NIfTI slices)",
      )
      .argument('[paths...]', 'PNG, DICOM (.dcm or none) and NIfTI (.nii, .nii.gz) files, or directories of them')
      .option(
        '--dicomweb <url>',
        'import from a PACS instead: its DICOMweb root, e.g. http://pacs:8042/dicom-web (record ID = SOPInstanceUID)',
      )
      .option('--study <uid...>', '--dicomweb: these studies (StudyInstanceUID)')
      .option('--series <uid...>', '--dicomweb: these series (SeriesInstanceUID)')
      .option('--all', '--dicomweb: every instance the PACS holds')
      .option('--since <date>', '--dicomweb: studies from this StudyDate on (YYYY-MM-DD)')
      .option('--dicomweb-user <user>', '--dicomweb: HTTP basic auth user; the password is read from FNN_DICOMWEB_PASSWORD')
      .option('--dicomweb-token-file <file>', '--dicomweb: a file holding a bearer token (or set FNN_DICOMWEB_TOKEN)')
      .addOption(c1())
      .addOption(c2())
      .addOption(keys())
      .addOption(collection())
      .option('--id <id>', 'record ID (base name) for a single file')
      .addOption(
        new Option(
          '--id-from <what>',
          'what names a DICOM record: sop (its SOP Instance UID: the same instance in any encoding is one record) or file (its file name); PNG and NIfTI records are always named by their file',
        )
          .choices(['sop', 'file'])
          .default('sop'),
      )
      .option('--labels <file.csv>', "the owner's label of each record (e.g. a diagnosis): CSV rows ID,label, sealed with the record")
      .option(
        '--keep-patient-identity',
        'seal the DICOM PatientName and PatientID with each record too (by default they are never uploaded, not even encrypted)',
      )
      .option('--paper-layout', "store the paper's per-pixel layout too, so fnn and bf can run (a new collection's default)")
      .option(
        '--no-paper-layout',
        "skip the paper's per-pixel layout (d encryptions and d ciphertexts per record): the collection then answers only --protocol fast; default: the collection's",
      )
      .addOption(json()),
  ),
).action(
  action(async (paths: string[], o: Omit<Parameters<typeof upload>[2], 'transport'> & TlsFlags & { json?: boolean }) =>
    upload(makeOutput(!!o.json), paths, secured(o, CLIENTS)),
  ),
);

tlsOptions(
  program
    .command('delete')
    .description("delete records by ID; their ciphertexts are removed from C1 and from C2's replica")
    .argument('<ids...>', 'record IDs')
    .addOption(c1())
    .addOption(c2())
    .addOption(keys())
    .addOption(collection())
    .addOption(json()),
).action(
  action(async (ids: string[], o: { c1: string; c2: string; keys: string; collection?: string; json?: boolean } & TlsFlags) =>
    deleteRecords(makeOutput(!!o.json), ids, secured(o, CLIENTS)),
  ),
);

const queryOptions = (cmd: Command) =>
  tlsOptions(imageOptions(cmd))
    .addOption(c1())
    .addOption(c2())
    .addOption(keys())
    .addOption(collection())
    .addOption(
      new Option('--protocol <name>', PROTOCOL_NAMES.map((name) => `${name}: ${protocolModule(name).summary}`).join('; '))
        .choices(PROTOCOL_NAMES)
        .default(DEFAULT_PROTOCOL),
    )
    .option('--k <k>', 'number of nearest neighbours', '1')
    .option('--out <dir>', 'write the neighbour images here as PNG')
    .option('--timeout <seconds>', 'give up after this long', '3600')
    .addOption(json());

queryOptions(
  program
    .command('query')
    .description('find the exact nearest neighbour(s) of an image')
    .argument('<image>', 'query image: PNG, DICOM or NIfTI; FILE#frame3 or FILE#z012 names one image of a multi-image file'),
).action(
  action(async (image: string, o: Omit<Parameters<typeof query>[2], 'transport'> & TlsFlags & { json?: boolean }) =>
    query(makeOutput(!!o.json), image, secured(o, CLIENTS)),
  ),
);

queryOptions(
  program
    .command('batch-query')
    .description('many queries over one stream; results print as they finish')
    .argument('<paths...>', 'query images or directories'),
).action(
  action(async (paths: string[], o: Omit<Parameters<typeof query>[2], 'transport'> & TlsFlags & { json?: boolean }) =>
    batchQuery(makeOutput(!!o.json), paths, secured(o, CLIENTS)),
  ),
);

tlsOptions(
  imageOptions(
    program
      .command('viewer')
      .description("the doctor's web page on this machine: drop an image, see its nearest neighbours; crypto stays in this process")
      .addOption(c1())
      .addOption(c2())
      .addOption(keys())
      .option(
        '--listen <host:port>',
        'address to serve the page at (loopback unless you mean otherwise; port 0: a free port)',
        '127.0.0.1:8080',
      )
      .addOption(new Option('--protocol <name>', "the page's default protocol").choices(PROTOCOL_NAMES).default(DEFAULT_PROTOCOL))
      .addOption(
        new Option('--collection <name>', 'the collection the page opens with (it lists them all: `fnn collections`)').env(
          'FNN_COLLECTION',
        ),
      )
      .option('--max-file <MiB>', 'largest file the page may send', '256')
      .option('--timeout <seconds>', 'give up on a search after this long', '3600')
      .addOption(json()),
  ),
).action(
  action(async (o: Omit<Parameters<typeof viewer>[1], 'transport'> & TlsFlags & { json?: boolean }) =>
    viewer(makeOutput(!!o.json), secured(o, CLIENTS)),
  ),
);

tlsOptions(
  program
    .command('status')
    .description('are C1 and C2 up; records, image size, key size')
    .addOption(c1())
    .addOption(c2())
    .addOption(unusedKeys())
    .addOption(collection())
    .addOption(json()),
).action(
  action(async (o: { c1: string; c2: string; collection?: string; json?: boolean } & TlsFlags) =>
    status(makeOutput(!!o.json), secured(o, ROLES)),
  ),
);

tlsOptions(
  program
    .command('collections')
    .description("the deployment's collections: name, records, image size, pixel depth, settings, protocols")
    .addOption(c1())
    .addOption(new Option('--c2 <host:port>', 'accepted and not used by this command').env('FNN_C2'))
    .addOption(unusedKeys())
    .addOption(json()),
).action(action(async (o: { c1: string; json?: boolean } & TlsFlags) => collections(makeOutput(!!o.json), secured(o, ROLES))));

tlsOptions(
  program
    .command('health')
    .description("a daemon's grpc.health.v1: exit 0 if it is SERVING, 5 if not (a service manager's or container's health check)")
    .addOption(c1())
    .addOption(c2())
    .addOption(keys())
    .option('--timeout <seconds>', 'give up after this long', '5')
    .addOption(json()),
).action(
  action(async (o: { c1?: string; c2?: string; timeout: string; json?: boolean } & TlsFlags) =>
    health(makeOutput(!!o.json), secured(o, ROLES)),
  ),
);

tlsOptions(
  program
    .command('check')
    .description("the owner's: compare C1's collection and C2's replica group by group (digests, member counts); exit 3 when they differ")
    .addOption(c1())
    .addOption(c2())
    .addOption(unusedKeys())
    .addOption(collection())
    .addOption(json()),
).action(
  action(async (o: { c1: string; c2: string; collection?: string; json?: boolean } & TlsFlags) =>
    check(makeOutput(!!o.json), secured(o, CLIENTS)),
  ),
);

tlsOptions(
  program
    .command('repair')
    .description("the owner's: rewrite every group C2's replica does not serve as C1 holds it, from C1's records; safe to run again")
    .addOption(c1())
    .addOption(c2())
    .addOption(keys())
    .addOption(collection())
    .addOption(json()),
).action(
  action(async (o: { c1: string; c2: string; keys: string; collection?: string; json?: boolean } & TlsFlags) =>
    repair(makeOutput(!!o.json), secured(o, CLIENTS)),
  ),
);

const auditCommand = tlsOptions(
  program
    .command('audit')
    .description(
      "the owner's: a daemon's audit trail (who did what, when), and with --verify its hash chain checked here; exit 7 when it does not hold",
    )
    .addOption(c1())
    .addOption(c2())
    .option(
      '--since <when>',
      'entries from then on: a date or time (2026-12-01, 2026-12-01T08:00Z) or a duration back from now (90m, 24h, 7d)',
    )
    .option('--verify', 'walk the whole chain and name the first entry that was edited, removed or added')
    .option('--head <seq:hash>', 'with --verify: the head an earlier --verify printed, which the chain must still hold (a cut end)')
    .addOption(keys())
    .addOption(json()),
).action(
  action(async (o: { c1?: string; c2?: string; since?: string; verify?: boolean; head?: string; json?: boolean } & TlsFlags) => {
    // One daemon: the one named on the command line, else the only one the environment names.
    const named = (['c1', 'c2'] as const).filter((d) => auditCommand.getOptionValueSource(d) === 'cli');
    const given = named.length > 0 ? named : (['c1', 'c2'] as const).filter((d) => o[d] !== undefined);
    if (given.length !== 1) throw new CliError('usage', 'name one daemon: --c1 HOST:PORT or --c2 HOST:PORT. See fnn audit --help');
    const daemon = given[0];
    await audit(makeOutput(!!o.json), { ...secured(o, CLIENTS), daemon, address: o[daemon]! });
  }),
);

// The daemons read a config file under a service manager (config-file.ts: flag > env > file > default).
for (const daemon of ['c1', 'c2']) withConfigFile(program.commands.find((c) => c.name() === daemon)!);

oneLineUsageErrors(program);

export { program };

/** Runs the CLI on `argv`: `node client/dist/main.js` and client/bin/fnn.js (npx fnn) call it; a test imports `program` instead. */
export function run(argv: readonly string[] = process.argv): Promise<void> {
  return program.parseAsync(argv).then(
    () => {},
    (error: { exitCode?: number; code?: string }) => {
      // commander's own usage errors (already printed) and --help/--version
      process.exitCode = error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? 0 : 2;
    },
  );
}

if (require.main === module) void run();
