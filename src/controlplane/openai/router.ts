// The OpenAI-compatible routes, mounted at /v1 after the draining check, API-key auth and the JSON body parser
// (app.ts): GET /models, POST /completions, POST /chat/completions (plain, or server-sent events with `stream: true`).
// Each generation request is one ServingRequest (serving-request.ts); this file only wires the pieces in order:
// schema.ts parses the body, request-builder.ts makes the engine request, responses.ts and sse.ts write the answer.
import express, { type Request, type Response } from 'express';
import { Engine } from '../../engine/engine.js';
import type { Generation } from '../../engine/generation.js';
import { ControlPlaneError, modelNotFound } from '../errors.js';
import type { FinishedRequest, GenerationEndpoint } from '../hooks.js';
import type { ConcurrencyLimiter } from '../security.js';
import type { ChatTemplate } from './chat-template.js';
import { chatPromptTokens, engineChatTokenizer } from './chat-prompt.js';
import { buildGenerateRequest, type ParsedRequest } from './request-builder.js';
import { modelEntry, newIdentity, responseBody } from './responses.js';
import { parseChatRequest, parseCompletionRequest } from './schema.js';
import { withGrammarParam } from './schema-structured.js';
import type { ServerState } from '../server-state.js';
import { ServingRequest } from './serving-request.js';
import { SSE_DONE, StreamEncoder, sseFrame, writeSseHead } from './sse.js';
import type { ChatMessage } from './schema.js';
import { parsedChoice, streamedChunks, StreamedAnswer, toolFinishReason } from './tools/answer.js';
import type { AssistantOutput, OutputParserOptions } from './tools/output-parser.js';
import { applyToolGrammar, needsParser, outputOptions, toolGrammarFor, toolPlan } from './tools/plan.js';

/** The server options the routes read, at request time (ServerOptions). */
export interface OpenAIRouteOptions {
  modelName: string;
  requestTimeoutMs: number;
  maxPromptTokens?: number | undefined;
  maxTokensLimit?: number | undefined;
}

export interface OpenAIRouterDeps {
  engine: Engine;
  options: OpenAIRouteOptions;
  template: ChatTemplate;
  server: ServerState;
  streams: ConcurrencyLimiter;
  observeError?: ((reason: string) => void) | undefined;
  /** Every generation request's one FinishedRequest (hooks.ts fanOutFinished). */
  onFinished(f: FinishedRequest, log: Request['log']): void;
}

export function openaiRouter(deps: OpenAIRouterDeps): express.Router {
  const { engine, options, template, server, streams, observeError } = deps;
  const onFinished = (f: FinishedRequest, log: Request['log']): void => deps.onFinished(f, log);
  const router = express.Router();

  // The file's parameter count, from its header, read once per model path (the live layout comes from engine.info,
  // which a reload refreshes). A header that cannot be read any more leaves the field out, never fails the route.
  const created = Math.floor(Date.now() / 1000);
  let header: { path: string; parameters: number | undefined } | undefined;
  const parametersOf = (path: string): number | undefined => {
    if (header?.path !== path) {
      let parameters: number | undefined;
      try {
        parameters = Engine.inspect(path).parameters;
      } catch {
        parameters = undefined;
      }
      header = { path, parameters };
    }
    return header.parameters;
  };

  router.get('/models', (_req, res) => {
    const info = engine.info;
    res.json({ object: 'list', data: [{ ...modelEntry(options.modelName, info, parametersOf(info.path), created), chat_template: template.summary }] });
  });

  const serve =
    (endpoint: GenerationEndpoint) =>
    (req: Request, res: Response): Promise<void> =>
      new ServingRequest({ endpoint, req, res, server, streams, observeError, onFinished }).run(async (sr) => {
        if (req.body === undefined) {
          throw new ControlPlaneError('CP_ERR_INVALID_REQUEST', "Expected a JSON body with 'Content-Type: application/json'", { param: 'body' });
        }
        const parsed: ParsedRequest = endpoint === 'chat_completions' ? parseChatRequest(req.body) : parseCompletionRequest(req.body);
        sr.stream = parsed.stream;
        if (parsed.model !== options.modelName) throw modelNotFound(parsed.model, options.modelName);
        // A chat prompt is rendered (maybe on the template worker) and tokenized before the limits are checked. Tools
        // and reasoning (tools/plan.ts) decide what the template gets and how the answer is parsed.
        const plan = parsed.kind === 'chat' ? toolPlan(parsed, template) : undefined;
        const prompt = plan ? await chatPromptTokens(plan.messages as unknown as ChatMessage[], template, engineChatTokenizer(engine), plan.render) : undefined;
        const chatTokens = prompt?.tokens;
        const outOpts = plan && prompt ? outputOptions(plan, prompt.text) : undefined;
        const parse = outOpts && needsParser(outOpts) ? outOpts : undefined;
        const built = buildGenerateRequest(parsed, {
          chatTokens,
          tokenize: (text) => engine.tokenize(text),
          contextLength: engine.info.contextLength,
          template,
          maxPromptTokens: options.maxPromptTokens,
          maxTokensLimit: options.maxTokensLimit,
          requestTimeoutMs: options.requestTimeoutMs,
        });
        if (plan && parsed.kind === 'chat' && outOpts) applyToolGrammar(built.request, toolGrammarFor(plan, parsed, outOpts), plan.choice);
        // The engine parses the grammar at submit: its refusal points at the field the grammar came from.
        const gen = sr.submit(built, (r) => withGrammarParam(() => engine.generate(r), parsed.structured));
        if (!gen) return;
        // Counted once the request runs (tool-families.ts); the answer fills in calls, failures and reasoning.
        if (plan && (parse || plan.choice !== undefined))
          sr.tools = { family: plan.family, ...(plan.choice !== undefined ? { toolChoice: plan.choice } : {}), calls: 0, failures: 0, reasoning: false };
        req.log?.debug({ generation: gen.id, promptTokens: built.promptTokens, maxTokens: built.request.maxTokens, stream: parsed.stream }, 'generation started');
        if (parsed.stream) await answerStream(sr, req, res, parsed, gen, built.promptTokens, parse);
        else await answerPlain(sr, res, parsed, gen, built.promptTokens, parse);
      });

  async function answerPlain(sr: ServingRequest, res: Response, p: ParsedRequest, gen: Generation, promptTokens: number, parse?: OutputParserOptions): Promise<void> {
    const r = await gen.result;
    if (!sr.resultArrived(r)) return;
    const body = responseBody(p, r, promptTokens, options.modelName);
    if (parse) recordOutput(sr, parsedChoice(body.choices[0] as { message: unknown; finish_reason: string }, r, parse), res.req.log);
    res.json(body);
    sr.answered();
  }

  async function answerStream(
    sr: ServingRequest,
    req: Request,
    res: Response,
    p: ParsedRequest,
    gen: Generation,
    promptTokens: number,
    parse?: OutputParserOptions,
  ): Promise<void> {
    const enc = new StreamEncoder(p, newIdentity(p.kind, options.modelName));
    const answer = parse ? new StreamedAnswer(parse) : undefined;
    const send = (payload: unknown): void => {
      if (!res.writableEnded) res.write(sseFrame(payload));
    };
    writeSseHead(res);
    sr.streaming();
    for (const c of enc.opening()) send(c);
    for await (const chunk of gen) {
      if (sr.cancelled) break;
      if (answer) {
        for (const c of streamedChunks(enc, answer.push(chunk.text), chunk.logprobs)) send(c);
        continue;
      }
      const c = enc.piece(chunk);
      if (c !== undefined) send(c);
    }
    const r = await gen.result;
    if (!sr.resultArrived(r)) return;
    if (answer) {
      for (const c of streamedChunks(enc, answer.finish())) send(c);
      recordOutput(sr, answer.output(), req.log);
    }
    for (const c of enc.closing(r, promptTokens, answer ? toolFinishReason(r.finishReason, answer.callCount) : undefined)) send(c);
    res.write(SSE_DONE);
    res.end();
    sr.answered();
    req.log?.debug({ generation: gen.id, finishReason: r.finishReason, completionTokens: r.usage.completionTokens }, 'stream finished');
  }

  /** The parsed answer's counts, for the tool-call metrics. */
  function recordOutput(sr: ServingRequest, o: AssistantOutput, log: Request['log']): void {
    if (sr.tools) sr.tools = { ...sr.tools, calls: o.toolCalls.length, failures: o.failures.length, reasoning: o.reasoning !== null };
    // Why a would-be call went back as content (the text is the client's to see; the reasons name no request text
    // beyond a truncated tool name).
    if (o.failures.length > 0) log?.info({ toolCallFailures: o.failures, family: sr.tools?.family }, 'tool call not parsed: returned as content');
  }

  router.post('/completions', serve('completions'));
  router.post('/chat/completions', serve('chat_completions'));
  return router;
}
