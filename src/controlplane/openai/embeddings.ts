// POST /v1/embeddings in OpenAI's shape: one L2-normalised vector per input, pooled from the engine's final hidden
// states (engine.embed; the pooling is the model's, src/engine/pooling.ts). Inputs: a string, an array of strings, an
// array of token ids, or an array of token-id arrays; each is embedded alone (its own forward pass from position 0),
// so a batch's vectors equal those of the inputs sent one by one. docs/api.md ("POST /v1/embeddings") is the contract.
import type { Request, Response } from 'express';
import type { Engine } from '../../engine/engine.js';
import { modelPooling } from '../../engine/pooling.js';
import { ControlPlaneError, modelNotFound, refusalLog, sendError, toControlPlaneError } from '../errors.js';
import type { ServerState } from '../server-state.js';
import { checkFields } from './field-policy.js';
import { bad } from './request-errors.js';

/** Most inputs in one request (OpenAI's own limit). */
export const MAX_EMBEDDING_INPUTS = 2048;
/** Most tokens over all inputs of one request: bounds the work one request holds (each input also fits the context). */
export const MAX_EMBEDDING_TOKENS = 65_536;
/** Inputs evaluated at once: enough to fill the engine's batches, few enough to leave its queue to other requests. */
const IN_FLIGHT = 8;

export type EmbeddingInput = { text: string } | { tokens: number[] };

export interface EmbeddingRequest {
  model: string;
  inputs: EmbeddingInput[];
  encoding: 'float' | 'base64';
  /** One input given bare (a string or one token-id array): errors name 'input', not 'input[0]'. */
  single: boolean;
  /** The vector width asked for; only the model's own is accepted (see parseEmbeddingRequest). */
  dimensions?: number;
}

const isTokenId = (t: unknown): t is number => typeof t === 'number' && Number.isInteger(t) && t >= 0;

function what(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

/** The body, validated. Every error names the field (param) it is about. */
export function parseEmbeddingRequest(raw: unknown): EmbeddingRequest {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('body', `The request body must be a JSON object, got ${what(raw)}`);
  const body = raw as Record<string, unknown>;
  checkFields('embeddings', body);
  if (body.model === undefined || body.model === null) throw bad('model', "'model' is a required property");
  if (typeof body.model !== 'string' || body.model.length === 0) throw bad('model', `'model' must be a non-empty string, got ${what(body.model)}`);
  if (body.input === undefined || body.input === null) throw bad('input', "'input' is a required property");
  const input = body.input;
  let inputs: EmbeddingInput[];
  if (typeof input === 'string') inputs = [{ text: input }];
  else if (!Array.isArray(input) || input.length === 0)
    throw bad(
      'input',
      `'input' must be a string, an array of strings, an array of token ids or an array of token-id arrays, got ${what(input)}${Array.isArray(input) ? ' (empty)' : ''}`,
    );
  else if (input.length > MAX_EMBEDDING_INPUTS) throw bad('input', `'input' may hold at most ${MAX_EMBEDDING_INPUTS} inputs, got ${input.length}`);
  else if (input.every((x) => typeof x === 'number')) {
    const bad_ = input.findIndex((t) => !isTokenId(t));
    if (bad_ >= 0) throw bad('input', `'input[${bad_}]' must be a token id (a non-negative integer), got ${String(input[bad_])}`);
    inputs = [{ tokens: input }];
  } else {
    const kind = typeof input[0] === 'string' ? 'string' : 'array';
    inputs = input.map((x: unknown, i): EmbeddingInput => {
      if ((typeof x === 'string' ? 'string' : 'array') !== kind)
        throw bad(
          'input',
          `'input[${i}]' must be ${kind === 'string' ? 'a string' : 'an array of token ids'} like 'input[0]': one request holds strings or token-id arrays, not both`,
        );
      if (typeof x === 'string') return { text: x };
      if (Array.isArray(x) && x.length > 0 && x.every(isTokenId)) return { tokens: x };
      throw bad('input', `'input[${i}]' must be a non-empty string or a non-empty array of token ids (all inputs of one kind or the other), got ${what(x)}`);
    });
  }
  inputs.forEach((x, i) => {
    if ('text' in x && x.text.length === 0) throw bad('input', `'input${typeof input === 'string' ? '' : `[${i}]`}' must not be empty`);
  });
  const single = typeof input === 'string' || input.every((x) => typeof x === 'number');
  const out: EmbeddingRequest = { model: body.model, inputs, encoding: 'float', single };
  const ef = body.encoding_format;
  if (ef !== undefined && ef !== null) {
    if (ef !== 'float' && ef !== 'base64') throw bad('encoding_format', `'encoding_format' must be 'float' or 'base64', got ${JSON.stringify(ef).slice(0, 40)}`);
    out.encoding = ef;
  }
  const d = body.dimensions;
  if (d !== undefined && d !== null) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 1) throw bad('dimensions', `'dimensions' must be a positive integer, got ${what(d)}`);
    out.dimensions = d;
  }
  return out;
}

/** A vector as OpenAI's base64 encoding: the float32 values little-endian, what the SDKs decode. */
export function base64Float32(v: Float32Array): string {
  const buf = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) buf.writeFloatLE(v[i]!, i * 4);
  return buf.toString('base64');
}

export interface EmbeddingsRouteDeps {
  engine: Engine;
  modelName: string;
  /** The per-request prompt limit (server.maxPromptTokens), applied to each input. */
  maxPromptTokens?: number | undefined;
  /** One answered embeddings request: its input count and tokens (metrics). */
  observeEmbeddings?: ((inputs: number, tokens: number) => void) | undefined;
  /** Error answers by wire code (MetricsHook.observeError). */
  observeError?: ((reason: string) => void) | undefined;
  /** Counted in while handled, so a graceful drain waits for the embeddings in flight (server-state.ts). */
  server?: ServerState | undefined;
}

/** Answered here rather than thrown to the app's error handler, so the request metrics keep this route's label. */
export function answerError(req: Request, res: Response, cpe: ControlPlaneError, observeError?: (reason: string) => void): void {
  if (cpe.status >= 500) req.log?.error({ err: cpe }, 'request failed');
  else req.log?.info(refusalLog(cpe), 'request refused');
  if (res.headersSent) {
    res.end();
    return;
  }
  sendError(res, cpe, observeError);
}

export function embeddingsHandler(deps: EmbeddingsRouteDeps): (req: Request, res: Response) => Promise<void> {
  return async (req, res) => {
    const { engine } = deps;
    deps.server?.begin();
    try {
      if (req.body === undefined) throw bad('body', "Expected a JSON body with 'Content-Type: application/json'");
      const parsed = parseEmbeddingRequest(req.body);
      if (parsed.model !== deps.modelName) throw modelNotFound(parsed.model, deps.modelName);
      const info = engine.info;
      if (parsed.dimensions !== undefined && parsed.dimensions !== info.dim) {
        // Truncating to fewer dimensions is only meaningful for models trained for it (Matryoshka embeddings); a
        // decoder LM's hidden state is not one of them, so any other width is refused rather than made up.
        throw bad('dimensions', `'dimensions' must be ${info.dim}, this model's embedding width (truncated embeddings are not supported), got ${parsed.dimensions}`);
      }
      const pooling = modelPooling(info.poolingType);
      const limit = Math.min(info.contextLength, deps.maxPromptTokens ?? Infinity);
      let total = 0;
      const tokenLists = parsed.inputs.map((x, i) => {
        const tokens = 'text' in x ? engine.tokenize(x.text) : x.tokens;
        const where = parsed.single ? 'input' : `input[${i}]`;
        if (tokens.length === 0) throw bad('input', `'${where}' tokenizes to no tokens`);
        if (tokens.length > limit) {
          throw new ControlPlaneError('CP_ERR_CONTEXT_OVERFLOW', `'${where}' is ${tokens.length} tokens; each input may be at most ${limit} tokens`, { param: 'input' });
        }
        const bad_ = tokens.findIndex((t) => t >= info.nVocab);
        if (bad_ >= 0) throw bad('input', `'${where}' holds token id ${tokens[bad_]}, outside the vocabulary (0..${info.nVocab - 1})`);
        total += tokens.length;
        return tokens;
      });
      if (total > MAX_EMBEDDING_TOKENS) throw bad('input', `the inputs hold ${total} tokens in all; one request may hold at most ${MAX_EMBEDDING_TOKENS}`);

      const vectors: Float32Array[] = new Array<Float32Array>(tokenLists.length);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < tokenLists.length) {
          const i = next++;
          vectors[i] = await engine.embed(tokenLists[i]!, { pooling });
        }
      };
      await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, tokenLists.length) }, worker));
      deps.observeEmbeddings?.(tokenLists.length, total);
      res.json({
        object: 'list',
        data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: parsed.encoding === 'base64' ? base64Float32(v) : Array.from(v) })),
        model: deps.modelName,
        usage: { prompt_tokens: total, total_tokens: total },
      });
    } catch (err) {
      answerError(req, res, toControlPlaneError(err, 'input'), deps.observeError);
    } finally {
      deps.server?.end();
    }
  };
}
