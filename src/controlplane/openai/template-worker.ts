// The template worker: renders chat templates off the server's event loop (template-sandbox.ts starts it, bounds its
// time and heap, and replaces it when it is cut off). One request at a time; parsed templates are kept by source.
import { parentPort } from 'node:worker_threads';
import { compileChatTemplate, TemplateRaise, TemplateSyntaxError, type CompiledChatTemplate } from './chat-template-jinja.js';
import type { WorkerReply, WorkerRequest } from './template-sandbox.js';

const port = parentPort;
if (!port) throw new Error('template-worker.ts runs as a worker thread (template-sandbox.ts)');

const compiled = new Map<string, CompiledChatTemplate>();
// A server has one or a few templates; the bound only stops a caller that feeds many from growing the worker.
const MAX_CACHED = 16;

function compile(source: string): CompiledChatTemplate {
  let t = compiled.get(source);
  if (!t) {
    t = compileChatTemplate(source);
    if (compiled.size >= MAX_CACHED) compiled.delete(compiled.keys().next().value!);
    compiled.set(source, t);
  }
  return t;
}

function handle(req: WorkerRequest): WorkerReply {
  try {
    const t = compile(req.source);
    if (req.op === 'compile') return { id: req.id, ok: true };
    const text = t.render({ ...req.ctx, now: new Date(req.nowMs) });
    if (text.length > req.maxOutputChars) return { id: req.id, kind: 'too_large', message: `${text.length} characters` };
    return { id: req.id, text };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof TemplateSyntaxError) return { id: req.id, kind: 'syntax', message };
    if (e instanceof TemplateRaise) return { id: req.id, kind: 'raise', message };
    // A string grown past V8's limit while rendering is a huge output, not a template bug.
    if (e instanceof RangeError && /Invalid string length|Invalid array length/.test(message)) return { id: req.id, kind: 'too_large', message };
    return { id: req.id, kind: 'error', message };
  }
}

port.on('message', (req: WorkerRequest) => port.postMessage(handle(req) satisfies WorkerReply));
port.postMessage({ ready: true } satisfies WorkerReply);
