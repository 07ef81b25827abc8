#!/usr/bin/env node
// Entry point of `npx tuneloop`: runs the compiled CLI (dist/ is built by `npm install` via the prepare script).
import { main } from '../dist/src/cli.js';

// `tuneloop dashboards --list | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  },
);
