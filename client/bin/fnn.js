#!/usr/bin/env node
// The `fnn` command as npm links it (node_modules/.bin/fnn, so `npx fnn`). npm
// links a package's bin only if the file exists when it installs, and the CLI
// itself (dist/main.js) exists only after `make build`: this file is in the
// repository so the link is made by `npm ci` on a fresh clone.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const main = join(__dirname, '..', 'dist', 'main.js');
if (!existsSync(main)) {
  process.stderr.write('fnn: the CLI is not built yet. Run `make build` in the repository first.\n');
  process.exit(2);
}
require(main).run();
