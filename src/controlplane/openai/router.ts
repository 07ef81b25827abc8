// The OpenAI-compatible routes, mounted at /v1 after the draining check, API-key auth and the JSON body parser
// (app.ts): GET /models, POST /completions, POST /chat/completions (plain, or server-sent events with `stream: true`),
// POST /embeddings (embeddings.ts).
// Each generation request is one ServingRequest (serving-request.ts); this file only wires the pieces in order:
// schema.ts parses the body, request-builder.ts makes the engine request, responses.ts and sse.ts write the answer.
import express, { type Request, type Response } from 'express';
import { Engine } from '../../engine/engine.js';
import type { Generation } from '../../engine/generation.js';
import type { TokenChunk } from '../../engine/types.js';
import { ControlPlaneError, modelNotFound } from '../errors.js';
import type { FinishedRequest, GenerationEndpoint } from '../hooks.js';
import type { ConcurrencyLimiter } from '../security.js';
import type { ChatTemplate } from './chat-template.js';
import { chatPromptTokens, engineChatTokenizer } from './chat-prompt.js';
import { answerChoices, needsChoices } from './completion-choices.js';
import { buildGenerateRequest, type ParsedRequest } from './request-builder.js';
import { embeddingsHandler } from './embeddings.js';
import { modelEntry, newIdentity, responseBody } from './responses.js';
import { parseChatRequest, parseCompletionRequest } from './schema.js';
import { withGrammarParam } from './schema-structured.js';
import type { ServerState } from '../server-state.js';
import { ServingRequest } from './serving-request.js';
import { SSE_DONE, StreamEncoder, sseFrame, writeSseHead } from './sse.js';
import { HeldTokens, SseWriter } from './sse-writer.js';
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
  /** Tokens per streamed event after the first (server.streamInterval); default 1: every delivered batch at once. */
  streamInterval?: number | undefined;
}

export interface OpenAIRouterDeps {
  engine: Engine;
  options: OpenAIRouteOptions;
  template: ChatTemplate;
  server: ServerState;
  streams: ConcurrencyLimiter;
  observeError?: ((reason: string) => void) | undefined;
  /** One answered embeddings request: inputs and tokens (MetricsHook.observeEmbeddings). */
  observeEmbeddings?: ((inputs: number, tokens: number) => void) | undefined;
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
        sr.structured = parsed.structured;
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
          nVocab: engine.info.nVocab,
        });
        if (plan && parsed.kind === 'chat' && outOpts) applyToolGrammar(built.request, toolGrammarFor(plan, parsed, outOpts), plan.choice);
        // n > 1, echo and max_tokens 0 (completion-choices.ts); each choice's answer parsed for tool calls as below.
        if (needsChoices(parsed, built))
          return answerChoices({ sr, req, res, parsed, built, engine, modelName: options.modelName, parse, recordOutput: (o) => recordOutput(sr, o, req.log) });
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

  // One event per batch of delivered tokens (at least server.streamInterval tokens after the first event), one write
  // per event, waiting out a full socket (sse-writer.ts). With tools or reasoning the text goes through the answer
  // parser (tools/answer.ts), whose deltas become the batch's events.
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
    const out = new SseWriter(res);
    const held = new HeldTokens(options.streamInterval ?? 1);
    const encode = (chunk: TokenChunk): string | undefined => {
      if (answer) {
        const cs = streamedChunks(enc, answer.push(chunk.text), chunk.logprobs);
        return cs.length > 0 ? cs.map(sseFrame).join('') : undefined;
      }
      const c = enc.piece(chunk);
      return c === undefined ? undefined : sseFrame(c);
    };
    const pieceFrame = (): string => held.take(encode) ?? '';
    writeSseHead(res);
    sr.streaming();
    out.write(enc.opening().map(sseFrame).join(''));
    try {
      for await (const batch of gen.batches()) {
        if (sr.cancelled) break;
        if (!held.add(batch)) continue;
        out.write(pieceFrame());
        const full = out.ready();
        if (full) await full;
      }
    } catch (err) {
      // The tokens held for the interval go out before the in-band error (ServingRequest.fail).
      out.write(pieceFrame());
      throw err;
    }
    const r = await gen.result;
    if (!sr.resultArrived(r)) return;
    let tail = pieceFrame();
    if (answer) {
      tail += streamedChunks(enc, answer.finish()).map(sseFrame).join('');
      recordOutput(sr, answer.output(), req.log);
    }
    const finish = answer ? toolFinishReason(r.finishReason, answer.callCount) : undefined;
    out.end(tail + enc.closing(r, promptTokens, finish).map(sseFrame).join('') + SSE_DONE);
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
  router.post(
    '/embeddings',
    embeddingsHandler({
      engine,
      modelName: options.modelName,
      maxPromptTokens: options.maxPromptTokens,
      observeEmbeddings: deps.observeEmbeddings,
      observeError,
      server,
    }),
  );
  return router;
}
