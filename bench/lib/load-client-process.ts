// The load client of bench/serve.ts in a process of its own, so that the server's process holds the server and the
// engine only: its CPU time is the server's, and the client's (fetch, SSE parsing, JSON) is measured apart.
//
// The parent forks this file once (node --import tsx, with an IPC channel) and reuses the child for every run, so the
// child's start-up and JIT warm-up stay out of the figures. Protocol, one message each way per run:
//   parent → child  { type: 'run', options: LoadOptions (JSON-safe: no signal, no callbacks) }
//   child → parent  { type: 'report', report: LoadReport, cpuUs: { user, system } }   or   { type: 'error', message }
// The CPU time is the child's own (process.cpuUsage over the run: every thread of the child).
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runLoad, type LoadOptions, type LoadReport } from '../../src/loadgen/index.js';

export interface ClientRun {
  report: LoadReport;
  /** CPU microseconds the client process spent on the run (user + system). */
  cpuUs: number;
}

type Reply = { type: 'report'; report: LoadReport; cpuUs: { user: number; system: number } } | { type: 'error'; message: string };

/** A forked client process; `run` sends one load run to it and resolves with the child's report and CPU time. */
export class LoadClientProcess {
  private readonly child: ChildProcess;
  private exited: Error | undefined;

  constructor() {
    // `node --cpu-prof … bench/serve.ts` profiles the client too (its own .cpuprofile file).
    const prof = process.execArgv.filter((a) => a.startsWith('--cpu-prof'));
    this.child = fork(fileURLToPath(import.meta.url), ['--child'], {
      execArgv: ['--import', 'tsx', ...prof],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.once('exit', (code, signal) => (this.exited = new Error(`the load client process exited (code ${code}, signal ${signal})`)));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  run(options: LoadOptions): Promise<ClientRun> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      const onExit = () => reject(this.exited ?? new Error('the load client process exited'));
      this.child.once('exit', onExit);
      this.child.once('message', (m: Reply) => {
        this.child.off('exit', onExit);
        if (m.type === 'error') reject(new Error(`load client: ${m.message}`));
        else resolve({ report: m.report, cpuUs: m.cpuUs.user + m.cpuUs.system });
      });
      this.child.send({ type: 'run', options });
    });
  }

  /** Ends the child (disconnecting the IPC channel lets its event loop empty). */
  async close(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.disconnect();
    await gone;
  }
}

// Child side: serve run requests until the parent disconnects.
if (process.argv.includes('--child') && process.send) {
  process.on('message', (m: { type: 'run'; options: LoadOptions }) => {
    void (async () => {
      try {
        const c0 = process.cpuUsage();
        const report = await runLoad(m.options);
        const cpuUs = process.cpuUsage(c0);
        process.send!({ type: 'report', report, cpuUs } satisfies Reply);
      } catch (e) {
        process.send!({ type: 'error', message: (e as Error).message } satisfies Reply);
      }
    })();
  });
}
