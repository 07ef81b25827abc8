// POST /tokenize and POST /detokenize at the root, as llama.cpp's server and vLLM serve them, in one merged shape
// (docs/api.md, "POST /tokenize, POST /detokenize"): a body in either server's words is understood, and the answer
// carries both servers' keys, so a client of either reads what it expects.
//
//   /tokenize   llama.cpp: {content, add_special = false, parse_special = true, with_pieces = false}
//               vLLM:      {model?, prompt, add_special_tokens = true, return_token_strs = false}
//                          or {model?, messages, add_generation_prompt = true, tools?, chat_template_name?}
//               → {tokens, count, max_model_len} (+ token_strs; with_pieces: tokens are {id, piece} objects)
//   /detokenize {tokens, model?} → {content, prompt} (the same text under llama.cpp's and vLLM's key)
//
// Each server's defaults are kept for its own shape (llama.cpp adds no BOS unless asked, vLLM adds it): the key that
// carries the text says which shape a body is in. Special-token text is parsed in both (both servers do). A field in
// neither shape, or a setting this server cannot honour (add_generation_prompt false, a raw chat_template), is a 400
// naming it. Same auth as /v1 (API keys), mounted by app.ts.
import express, { type Request, type Response } from 'express';
import type { Engine } from '../engine/engine.js';
import { modelNotFound, toControlPlaneError } from './errors.js';
import { answerError } from './openai/embeddings.js';
import type { ChatTemplate } from './openai/chat-template.js';
import { chatPromptTokens, engineChatTokenizer } from './openai/chat-prompt.js';
import { parseChatRequest } from './openai/schema.js';
import { bad } from './openai/request-errors.js';

/** Most token ids one /detokenize accepts (the body limit bounds it too). */
export const MAX_DETOKENIZE_TOKENS = 1 << 20;

const TOKENIZE_FIELDS = [
  'content',
  'add_special',
  'parse_special',
  'with_pieces',
  'model',
  'prompt',
  'add_special_tokens',
  'return_token_strs',
  'messages',
  'add_generation_prompt',
  'tools',
  'chat_template_name',
] as const;
const DETOKENIZE_FIELDS = ['tokens', 'model'] as const;

type Body = Record<string, unknown>;

function objectBody(raw: unknown, known: readonly string[]): Body {
  if (raw === undefined) throw bad('body', "Expected a JSON body with 'Content-Type: application/json'");
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('body', 'The request body must be a JSON object');
  const body = raw as Body;
  for (const k of Object.keys(body)) {
    if (body[k] === null || body[k] === undefined) continue;
    if (!known.includes(k)) {
      const why =
        k === 'chat_template' || k === 'chat_template_kwargs' || k === 'continue_final_message'
          ? ': the model file’s chat templates are the ones served (pick one with chat_template_name)'
          : ' (docs/api.md lists the fields)';
      throw bad(k.slice(0, 64), `Unrecognized request argument supplied: ${k.slice(0, 64)}${why}`);
    }
  }
  return body;
}

function optBool(body: Body, key: string, def: boolean): boolean {
  const v = body[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'boolean') throw bad(key, `'${key}' must be a boolean`);
  return v;
}

export interface TokenizeRouterDeps {
  engine: Engine;
  modelName: string;
  template: ChatTemplate;
  /** Error answers by wire code (MetricsHook.observeError). */
  observeError?: ((reason: string) => void) | undefined;
}

/** The routes alone; app.ts puts auth, draining and the body parser in front of them. */
export function tokenizeRouter(deps: TokenizeRouterDeps, guards: express.RequestHandler[]): express.Router {
  const { engine, modelName, template } = deps;
  const router = express.Router();

  const checkModel = (body: Body): void => {
    const m = body.model;
    if (m === undefined || m === null) return;
    if (typeof m !== 'string' || m.length === 0) throw bad('model', "'model' must be a non-empty string");
    if (m !== modelName) throw modelNotFound(m, modelName);
  };

  /** A token's text for with_pieces / return_token_strs: its detokenized text alone (a token holding part of a
   *  UTF-8 sequence reads as U+FFFD here, where llama.cpp answers its raw bytes as an array of numbers). */
  const piece = (id: number): string => engine.detokenize([id]);

  router.post('/tokenize', ...guards, async (req: Request, res: Response) => {
    try {
      const body = objectBody(req.body, TOKENIZE_FIELDS);
      checkModel(body);
      const shapes = ['content', 'prompt', 'messages'].filter((k) => body[k] !== undefined && body[k] !== null);
      if (shapes.length !== 1) {
        throw bad(
          shapes[1] ?? 'content',
          shapes.length === 0
            ? "One of 'content' (llama.cpp), 'prompt' or 'messages' (vLLM) is required"
            : `Only one of 'content', 'prompt' and 'messages' may be given, got ${shapes.join(' and ')}`,
        );
      }
      const shape = shapes[0]!;
      let tokens: number[];
      if (shape === 'messages') {
        if (!optBool(body, 'add_generation_prompt', true)) {
          throw bad('add_generation_prompt', "'add_generation_prompt' false is not supported: the served chat templates always end with the assistant's turn opened");
        }
        // The chat route's own validation of messages and tools, and its rendering and tokenization.
        const chat = parseChatRequest({ model: modelName, messages: body.messages, tools: body.tools, chat_template_name: body.chat_template_name });
        tokens = (await chatPromptTokens(chat.messages, template, engineChatTokenizer(engine), { tools: chat.tools, templateName: chat.templateName })).tokens;
      } else {
        for (const k of ['tools', 'chat_template_name', 'add_generation_prompt'] as const) {
          if (body[k] !== undefined && body[k] !== null) throw bad(k, `'${k}' applies to 'messages' only`);
        }
        const text = body[shape];
        if (typeof text !== 'string') throw bad(shape, `'${shape}' must be a string`);
        const addSpecial = shape === 'content' ? optBool(body, 'add_special', false) : optBool(body, 'add_special_tokens', true);
        if (shape === 'content' && body.add_special_tokens !== undefined && body.add_special_tokens !== null)
          throw bad('add_special_tokens', "'add_special_tokens' goes with 'prompt'; with 'content' use 'add_special'");
        if (shape === 'prompt' && body.add_special !== undefined && body.add_special !== null)
          throw bad('add_special', "'add_special' goes with 'content'; with 'prompt' use 'add_special_tokens'");
        tokens = engine.tokenize(text, { addBos: addSpecial, parseSpecial: optBool(body, 'parse_special', true) });
      }
      const out: Record<string, unknown> = { tokens, count: tokens.length, max_model_len: engine.info.contextLength };
      if (optBool(body, 'with_pieces', false)) out.tokens = tokens.map((id) => ({ id, piece: piece(id) }));
      if (optBool(body, 'return_token_strs', false)) out.token_strs = tokens.map(piece);
      res.json(out);
    } catch (err) {
      answerError(req, res, toControlPlaneError(err, 'messages'), deps.observeError);
    }
  });

  router.post('/detokenize', ...guards, (req: Request, res: Response) => {
    try {
      const body = objectBody(req.body, DETOKENIZE_FIELDS);
      checkModel(body);
      const t = body.tokens;
      if (!Array.isArray(t)) throw bad('tokens', "'tokens' must be an array of token ids");
      if (t.length > MAX_DETOKENIZE_TOKENS) throw bad('tokens', `'tokens' may hold at most ${MAX_DETOKENIZE_TOKENS} ids`);
      const nVocab = engine.info.nVocab;
      const i = t.findIndex((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= nVocab);
      if (i >= 0) throw bad('tokens', `'tokens[${i}]' must be a token id between 0 and ${nVocab - 1}`);
      const text = t.length === 0 ? '' : engine.detokenize(t as number[]);
      res.json({ content: text, prompt: text });
    } catch (err) {
      answerError(req, res, toControlPlaneError(err, 'tokens'), deps.observeError);
    }
  });
  return router;
}
