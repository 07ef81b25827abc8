// Bounded rendering of model-supplied chat templates. A template is code from the model file: a `{% for %}` over a
// huge range, a recursive macro or an output of gigabytes would otherwise stall or kill the server's event loop.
// Rendering runs on one persistent worker thread (template-worker.ts) with
//   - a time limit per render (timeoutMs): past it the worker is terminated and a fresh one started for the next;
//   - a heap limit (maxHeapMb, worker resourceLimits): a worker that runs out dies alone, and is replaced;
//   - an output cap (maxOutputChars): a longer rendering is refused.
// Renders queue and run one at a time (a render is synchronous CPU work; a second thread would not make one faster).
// The per-request overhead over rendering in-process is one message each way (docs/chat-templates.md has the figure).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { TemplateRaise, TemplateSyntaxError, type ChatTemplateContext } from './chat-template-jinja.js';

export type WorkerRequest =
  | { op: 'compile'; id: number; source: string }
  | { op: 'render'; id: number; source: string; ctx: Omit<ChatTemplateContext, 'now'>; nowMs: number; maxOutputChars: number };

export type WorkerReply =
  { ready: true } | { id: number; ok: true } | { id: number; text: string } | { id: number; kind: 'syntax' | 'raise' | 'error' | 'too_large'; message: string };

/** Rendering failed or was cut off. `reason`: `error` (the template failed on this input), `timeout`, `too_large`
 *  (output cap or string limit), `out_of_memory` (the worker's heap limit), `closed`. */
export class TemplateRenderError extends Error {
  override readonly name = 'TemplateRenderError';
  constructor(
    readonly reason: 'error' | 'timeout' | 'too_large' | 'out_of_memory' | 'closed',
    message: string,
  ) {
    super(message);
  }
}

export interface TemplateSandboxOptions {
  /** Longest one render may take; default 2000 ms. */
  timeoutMs?: number;
  /** Longest rendered prompt, in UTF-16 code units; default 8 Mi. */
  maxOutputChars?: number;
  /** The worker's old-generation heap, MiB; default 256. */
  maxHeapMb?: number;
}

interface Job {
  req: WorkerRequest;
  resolve(reply: WorkerReply): void;
  reject(e: Error): void;
}

/** The worker's entry: the compiled .js beside this file, or (tests and tsx, running the sources) a small script that
 *  registers tsx's loader in the worker and imports the .ts (Node 20 does not pass `--import` to workers). */
function workerEntry(): { entry: string | URL; eval: boolean } {
  const js = new URL('./template-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return { entry: js, eval: false };
  // The ESM build of tsx's API (its CommonJS one cannot load its own ESM half from an eval'd worker).
  const tsxApi = pathToFileURL(
    createRequire(import.meta.url)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs'),
  ).href;
  const ts = new URL('./template-worker.ts', import.meta.url).href;
  return { entry: `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(ts)}); });`, eval: true };
}

export class TemplateSandbox {
  readonly timeoutMs: number;
  readonly maxOutputChars: number;
  readonly maxHeapMb: number;
  private worker: Worker | undefined;
  /** The worker has loaded its code: renders are timed from here on, so a slow start never counts against one. */
  private ready = false;
  private queue: Job[] = [];
  private current: (Job & { timer: NodeJS.Timeout }) | undefined;
  private nextId = 1;
  private closed = false;
  /** Workers started so far (a test reads it to see a cut-off worker replaced). */
  workersStarted = 0;

  constructor(options: TemplateSandboxOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.maxOutputChars = options.maxOutputChars ?? 8 * 1024 * 1024;
    this.maxHeapMb = options.maxHeapMb ?? 256;
  }

  /** Parse `source` in the worker; TemplateSyntaxError when it does not parse. */
  async compile(source: string): Promise<void> {
    const reply = await this.run({ op: 'compile', id: 0, source });
    if ('kind' in reply) throw this.errorOf(reply);
  }

  /** Render `source` for `ctx`: the text, or TemplateRaise (raise_exception), TemplateSyntaxError, TemplateRenderError. */
  async render(source: string, ctx: ChatTemplateContext): Promise<string> {
    const { now, ...rest } = ctx;
    const reply = await this.run({ op: 'render', id: 0, source, ctx: rest, nowMs: (now ?? new Date()).getTime(), maxOutputChars: this.maxOutputChars });
    if ('kind' in reply) throw this.errorOf(reply);
    if (!('text' in reply)) throw new TemplateRenderError('error', 'the template worker answered a render without text');
    return reply.text;
  }

  /** Stop the worker; queued and running renders fail with reason `closed`. */
  async close(): Promise<void> {
    this.closed = true;
    const jobs = [...(this.current ? [this.current] : []), ...this.queue];
    this.queue = [];
    if (this.current) clearTimeout(this.current.timer);
    this.current = undefined;
    for (const j of jobs) j.reject(new TemplateRenderError('closed', 'the template renderer is closed'));
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }

  private errorOf(reply: { kind: 'syntax' | 'raise' | 'error' | 'too_large'; message: string }): Error {
    switch (reply.kind) {
      case 'syntax':
        return new TemplateSyntaxError(reply.message);
      case 'raise':
        return new TemplateRaise(reply.message);
      case 'too_large':
        return new TemplateRenderError('too_large', `the chat template's output is larger than the limit of ${this.maxOutputChars} characters (${reply.message})`);
      case 'error':
        return new TemplateRenderError('error', reply.message);
    }
  }

  private run(req: WorkerRequest): Promise<WorkerReply> {
    if (this.closed) return Promise.reject(new TemplateRenderError('closed', 'the template renderer is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ req: { ...req, id: this.nextId++ }, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.current || this.queue.length === 0 || this.closed) return;
    const worker = this.ensureWorker();
    if (!this.ready) return; // pumped again by the worker's ready message
    const job = this.queue.shift()!;
    const timer = setTimeout(() => {
      this.fail(new TemplateRenderError('timeout', `the chat template did not finish rendering within ${this.timeoutMs} ms (a runaway loop?); rendering was stopped`));
    }, this.timeoutMs);
    this.current = { ...job, timer };
    worker.postMessage(job.req);
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const { entry, eval: isEval } = workerEntry();
    const w = new Worker(entry, { eval: isEval, resourceLimits: { maxOldGenerationSizeMb: this.maxHeapMb, maxYoungGenerationSizeMb: 32, stackSizeMb: 4 } });
    this.workersStarted++;
    // An idle worker must not keep the process alive; the server (or a pending render's timer) does.
    w.unref();
    w.on('message', (reply: WorkerReply) => {
      if ('ready' in reply) {
        if (this.worker === w) this.ready = true;
        this.pump();
        return;
      }
      const job = this.current;
      if (!job || job.req.id !== reply.id || this.worker !== w) return;
      clearTimeout(job.timer);
      this.current = undefined;
      job.resolve(reply);
      this.pump();
    });
    w.on('error', (e: Error & { code?: string }) => {
      if (this.worker !== w) return;
      const oom = e.code === 'ERR_WORKER_OUT_OF_MEMORY';
      this.fail(
        oom
          ? new TemplateRenderError('out_of_memory', `the chat template used more than the renderer's ${this.maxHeapMb} MiB heap; rendering was stopped`)
          : new TemplateRenderError('error', `the template worker failed: ${e.message}`),
      );
    });
    w.on('exit', (code) => {
      if (this.worker !== w) return;
      this.fail(new TemplateRenderError('error', `the template worker exited (code ${code})`));
    });
    this.worker = w;
    this.ready = false;
    return w;
  }

  /** The render in flight fails; the worker is dropped (a fresh one starts for the next render). */
  private fail(e: TemplateRenderError): void {
    // A worker that dies before it is ready would die again: the waiting renders fail instead of respawning forever.
    if (!this.ready) {
      const waiting = this.queue;
      this.queue = [];
      for (const j of waiting) j.reject(e);
    }
    const w = this.worker;
    this.worker = undefined;
    this.ready = false;
    if (w) void w.terminate();
    const job = this.current;
    this.current = undefined;
    if (job) {
      clearTimeout(job.timer);
      job.reject(e);
    }
    this.pump();
  }
}
