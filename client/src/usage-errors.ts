import type { Command } from 'commander';

// A usage error as one line, "fnn: WHAT. See `fnn CMD --help`", instead of
// commander's "error: ..." followed by the whole help: the line that says
// what is wrong stays on the screen, and a script's log gets one line.

/** commander's error text (maybe two lines: the error and "(Did you mean ...?)") as one line with the hint. */
export function usageLine(commanderText: string, commandPath: string): string {
  const what = commanderText
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ')
    .replace(/^error: /, '')
    .replace(/\.$/, '');
  return `fnn: ${what}. See \`${commandPath} --help\``;
}

/** The command's name as typed: "fnn", "fnn query", "fnn certs issue". */
function pathOf(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Every command of `program`, at any depth, reports its usage errors as one line on stderr. */
export function oneLineUsageErrors(program: Command): void {
  const walk = (command: Command) => {
    command.showHelpAfterError(false);
    command.configureOutput({ outputError: (text, write) => write(usageLine(text, pathOf(command)) + '\n') });
    command.commands.forEach(walk);
  };
  walk(program);
}
