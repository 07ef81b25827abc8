// `tuneloop serve` (serveCommand) in a child process, as an operator runs it: JSON log lines collected, the URL from
// the 'listening' line, the exit code or signal. Extra environment (e.g. TUNELOOP_FAULTS) can be passed.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from './shared.js';

export interface ServeChild {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  url: Promise<string>;
  /** Exit code, or null when a signal ended it (see `signal`). */
  exit: Promise<number | null>;
  signal: Promise<NodeJS.Signals | null>;
}

/** `fileSizeLimitKiB`: run under `ulimit -f` with SIGXFSZ ignored, so a write past the limit fails with EFBIG as on a
 *  full disk (the closest to a full disk a test can get without mounting a filesystem). */
export function startServeChild(args: string[], env: NodeJS.ProcessEnv = {}, opts: { fileSizeLimitKiB?: number } = {}): ServeChild {
  const code = `import('./src/serve.ts').then((m) => m.serveCommand(${JSON.stringify(args)})).then((c) => process.exit(c))`;
  const nodeArgs = ['--import', 'tsx', '-e', code];
  const [cmd, argv] =
    opts.fileSizeLimitKiB === undefined
      ? [process.execPath, nodeArgs]
      : ['bash', ['-c', `ulimit -f ${opts.fileSizeLimitKiB}; trap '' XFSZ; exec "$0" "$@"`, process.execPath, ...nodeArgs]];
  const child = spawn(cmd, argv, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const ended = new Promise<[number | null, NodeJS.Signals | null]>((res) => child.on('exit', (c, s) => res([c, s])));
  const exit = ended.then(([c]) => c);
  const signal = ended.then(([, s]) => s);
  const url = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const j = JSON.parse(line) as Record<string, unknown>;
        lines.push(j);
        if (j.msg === 'listening') resolve(j.url as string);
      } catch {
        lines.push({ raw: line });
      }
    });
    void ended.then(([c, s]) => reject(new Error(`serve exited with ${c ?? s} before listening: ${stderr}`)));
  });
  return { child, lines, url, exit, signal };
}
