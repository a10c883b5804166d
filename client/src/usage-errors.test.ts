import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { oneLineUsageErrors, usageLine } from './usage-errors';

// A usage error is one line with the command's help named, never the whole help.

/** Parse `args` with a small program shaped like fnn's; what it wrote to stderr and stdout. */
function parse(args: string[]) {
  const err: string[] = [];
  const out: string[] = [];
  const program = new Command('fnn').exitOverride().configureOutput({ writeErr: (s) => err.push(s), writeOut: (s) => out.push(s) });
  program
    .command('status')
    .option('--c1 <host:port>', 'C1 address')
    .action(() => {});
  program
    .command('query')
    .argument('<image>')
    .requiredOption('--keys <dir>', 'keys')
    .action(() => {});
  program
    .command('certs')
    .command('issue')
    .requiredOption('--name <name>', 'who')
    .action(() => {});
  oneLineUsageErrors(program);
  try {
    program.parse(args, { from: 'user' });
  } catch {
    // exitOverride: commander throws once it has written the error
  }
  return { err: err.join(''), out: out.join('') };
}

describe('usage errors', () => {
  it('an unknown option is one line naming the command to ask for help', () => {
    expect(parse(['status', '--keys', 'k']).err).toBe("fnn: unknown option '--keys'. See `fnn status --help`\n");
  });

  it("commander's suggestion stays on the same line", () => {
    expect(parse(['status', '--c2x']).err).toMatch(/^fnn: unknown option '--c2x'( \(Did you mean --c1\?\))?\. See `fnn status --help`\n$/);
  });

  it('a missing argument, a missing required option, and a nested command', () => {
    expect(parse(['query', '--keys', 'k']).err).toBe("fnn: missing required argument 'image'. See `fnn query --help`\n");
    expect(parse(['query', 'x.png']).err).toBe("fnn: required option '--keys <dir>' not specified. See `fnn query --help`\n");
    expect(parse(['certs', 'issue']).err).toBe("fnn: required option '--name <name>' not specified. See `fnn certs issue --help`\n");
  });

  it('an unknown command points at the top-level help', () => {
    expect(parse(['stauts']).err).toMatch(/^fnn: unknown command 'stauts'.*\. See `fnn --help`\n$/);
  });

  it('never prints the help after an error, and --help still prints it', () => {
    expect(parse(['status', '--nope']).out).toBe('');
    expect(parse(['status', '--help']).out).toMatch(/Usage: fnn status/);
  });

  it('a sentence that ends with a full stop gets one', () => {
    expect(usageLine("error: too many arguments for 'status'. Expected 0 arguments but got 1.\n", 'fnn status')).toBe(
      "fnn: too many arguments for 'status'. Expected 0 arguments but got 1. See `fnn status --help`",
    );
  });
});
