// Answers that are more than one generation's text (router.ts sends a request here when needsChoices() says so):
// `n` > 1 choices (engine.generateN: the prompt prefilled once, its KV blocks shared), completions' `echo` (the prompt
// prepended to each choice, with the prompt tokens' logprobs when `logprobs` is set), and `max_tokens: 0` (nothing is
// generated: with echo the answer is the prompt and its logprobs — what lm-evaluation-harness scores log-likelihoods
// with — and without it an empty completion with finish_reason "length"). Plain and streamed. The per-choice shapes
// come from responses.ts / sse.ts; this file only fans them out over the choices and sums usage as OpenAI does (the
// prompt counted once, completion tokens over every choice).
import type { Request, Response } from 'express';
import type { Engine } from '../../engine/engine.js';
import { Generation } from '../../engine/generation.js';
import type { GenerateRequest, GenerationResult } from '../../engine/types.js';
import type { BuiltRequest, ParsedRequest } from './request-builder.js';
import { chatCompletionBody, completionBody, finishReasonOf, newIdentity, usageOf, type CompletionLogprobs, type ResponseIdentity } from './responses.js';
import type { CompletionRequest } from './schema.js';
import type { ServingRequest } from './serving-request.js';
import { SSE_DONE, StreamEncoder, sseFrame, writeSseHead } from './sse.js';
import { coalesce, SseWriter } from './sse-writer.js';
import { parsedChoice, streamedChunks, StreamedAnswer, toolFinishReason } from './tools/answer.js';
import type { AssistantOutput, OutputParserOptions } from './tools/output-parser.js';

/** Whether the request needs this path rather than the single-generation one. */
export function needsChoices(p: ParsedRequest, built: BuiltRequest): boolean {
  return p.n > 1 || (p.kind === 'completion' && p.echo === true) || built.request.maxTokens === 0;
}

/** One prompt token's logprob: null for the first (nothing precedes it), as OpenAI and vLLM report it. */
export interface PromptTokenLogprob {
  text: string;
  logprob: number | null;
  top: { text: string; logprob: number }[] | null;
}

/**
 * Log-probabilities of each prompt token given the tokens before it, from one forward pass over the prompt
 * (engine.evaluate with every position's logits: the computation engine.perplexity does, to the same float64 sums),
 * with the `top` most likely alternatives at each position (ties: lower id first).
 */
export async function promptLogprobs(engine: Engine, tokens: number[], top: number): Promise<PromptTokenLogprob[]> {
  const V = engine.info.nVocab;
  const text = (id: number): string => engine.detokenize([id]);
  const out: PromptTokenLogprob[] = [{ text: text(tokens[0]!), logprob: null, top: null }];
  if (tokens.length < 2) return out;
  const logits = await engine.evaluate(tokens, { allLogits: true });
  for (let i = 1; i < tokens.length; i++) {
    const row = logits.subarray((i - 1) * V, i * V);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    const lse = max + Math.log(sum);
    const alts: { id: number; l: number }[] = [];
    if (top > 0) {
      for (let id = 0; id < V; id++) {
        const l = row[id]!;
        if (alts.length === top && l <= alts[alts.length - 1]!.l) continue;
        let at = alts.length;
        while (at > 0 && alts[at - 1]!.l < l) at--;
        alts.splice(at, 0, { id, l });
        if (alts.length > top) alts.pop();
      }
    }
    out.push({ text: text(tokens[i]!), logprob: row[tokens[i]!]! - lse, top: alts.map((a) => ({ text: text(a.id), logprob: a.l - lse })) });
  }
  return out;
}

/** Legacy-completions logprobs of the echoed prompt followed by the generated tokens'. */
function echoLogprobs(prompt: PromptTokenLogprob[], generated: CompletionLogprobs | null, generatedOffset: number) {
  const out = {
    tokens: [] as string[],
    token_logprobs: [] as (number | null)[],
    top_logprobs: [] as (Record<string, number> | null)[],
    text_offset: [] as number[],
  };
  let off = 0;
  for (const p of prompt) {
    out.tokens.push(p.text);
    out.token_logprobs.push(p.logprob);
    out.top_logprobs.push(p.top ? Object.fromEntries(p.top.map((a) => [a.text, a.logprob])) : null);
    out.text_offset.push(off);
    off += p.text.length;
  }
  if (generated) {
    out.tokens.push(...generated.tokens);
    out.token_logprobs.push(...generated.token_logprobs);
    out.top_logprobs.push(...generated.top_logprobs);
    out.text_offset.push(...generated.text_offset.map((o) => o + generatedOffset));
  }
  return out;
}

/** A result for a choice that generates nothing (max_tokens 0). */
function emptyResult(promptTokens: number): GenerationResult {
  return {
    text: '',
    tokens: [],
    finishReason: 'length',
    usage: { promptTokens, cachedPromptTokens: 0, completionTokens: 0, totalTokens: promptTokens },
    timings: { queueMs: 0, prefillMs: 0, decodeMs: 0, timeToFirstTokenMs: 0, prefillTokensPerS: 0, decodeTokensPerS: 0 },
    logprobs: [],
  };
}

/** One Generation standing for all choices, for ServingRequest (cancel on disconnect, drain, the finished report):
 *  cancelling it cancels every choice; its result sums the choices' usage (prompt once) or carries the first error. */
function groupHandle(gens: Generation[], promptTokens: number): Generation {
  const g = new Generation(gens[0]?.id ?? -1, promptTokens, () => gens.forEach((x) => x.cancel()), false);
  void Promise.allSettled(gens.map((x) => x.result)).then((settled) => {
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) {
      g.onEvents([{ text: '', tokens: [], final: true, error: failed.reason as never }]);
      return;
    }
    const rs = settled.map((s) => (s as PromiseFulfilledResult<GenerationResult>).value);
    const first = rs[0];
    g.onEvents([
      {
        text: '',
        tokens: [],
        final: true,
        finishReason: first?.finishReason ?? 'length',
        promptTokens,
        cachedPromptTokens: rs.reduce((a, r) => a + r.usage.cachedPromptTokens, 0),
        completionTokens: rs.reduce((a, r) => a + r.usage.completionTokens, 0),
        ...(first
          ? {
              timings: {
                queueMs: first.timings.queueMs,
                prefillMs: first.timings.prefillMs,
                decodeMs: first.timings.decodeMs,
                timeToFirstTokenMs: first.timings.timeToFirstTokenMs,
              },
            }
          : {}),
      },
    ]);
  });
  return g;
}

export interface ChoicesDeps {
  sr: ServingRequest;
  req: Request;
  res: Response;
  parsed: ParsedRequest;
  built: BuiltRequest;
  engine: Engine;
  modelName: string;
  /** Chat with tools or reasoning: every choice's text goes through the answer parser (tools/answer.ts). */
  parse?: OutputParserOptions | undefined;
  /** Receives the parsed answers' counts for the tool metrics (all choices together). */
  recordOutput?: ((o: AssistantOutput) => void) | undefined;
}

/** The choices' parsed answers as one, for the metrics: calls and failures summed, reasoning if any had it. */
function mergedOutput(outputs: AssistantOutput[]): AssistantOutput | undefined {
  if (outputs.length === 0) return undefined;
  return {
    ...outputs[0]!,
    toolCalls: outputs.flatMap((o) => o.toolCalls),
    failures: outputs.flatMap((o) => o.failures),
    reasoning: outputs.find((o) => o.reasoning !== null)?.reasoning ?? null,
  };
}

/** The whole answer for needsChoices() requests. */
export async function answerChoices(d: ChoicesDeps): Promise<void> {
  const { sr, parsed: p, built, engine } = d;
  const promptTokens = built.promptTokens;
  const tokens = built.request.tokens!;
  const generates = built.request.maxTokens !== 0;
  let gens: Generation[] = [];
  const group = sr.submit(built, (r: GenerateRequest) => {
    gens = generates ? engine.generateN(r, p.n) : [];
    return groupHandle(gens, promptTokens);
  });
  if (!group) return;
  d.req.log?.debug({ generations: gens.map((g) => g.id), choices: p.n, promptTokens, maxTokens: built.request.maxTokens, stream: p.stream }, 'generation started');
  const echo = p.kind === 'completion' && p.echo === true ? echoOf(engine, p, tokens) : undefined;
  try {
    if (p.stream) await answerStream(d, gens, group, echo);
    else await answerPlain(d, gens, group, echo);
  } catch (err) {
    group.cancel(); // one choice failed (or the echo's evaluation): the others would run on for nothing
    throw err;
  }
}

interface Echo {
  text: string;
  /** The prompt tokens' logprobs, when logprobs were asked for. */
  logprobs: Promise<PromptTokenLogprob[]> | undefined;
}

function echoOf(engine: Engine, p: CompletionRequest, tokens: number[]): Echo {
  const text = typeof p.prompt === 'string' ? p.prompt : engine.detokenize(tokens);
  const logprobs = p.logprobs !== undefined ? promptLogprobs(engine, tokens, p.logprobs) : undefined;
  logprobs?.catch(() => undefined); // awaited below; a failure is answered there
  return { text, logprobs };
}

async function answerPlain(d: ChoicesDeps, gens: Generation[], group: Generation, echo: Echo | undefined): Promise<void> {
  const { sr, res, parsed: p, built } = d;
  const promptTokens = built.promptTokens;
  const total = await group.result;
  if (!sr.resultArrived(total)) return;
  const rs = gens.length > 0 ? await Promise.all(gens.map((g) => g.result)) : Array.from({ length: p.n }, () => emptyResult(promptTokens));
  const promptLps = echo?.logprobs ? await echo.logprobs : undefined;
  const who = newIdentity(p.kind, d.modelName);
  const outputs: AssistantOutput[] = [];
  const choices = rs.map((r, index) => {
    if (p.kind === 'chat') {
      const c = { ...chatCompletionBody(p, r, promptTokens, who).choices[0]!, index };
      if (d.parse) outputs.push(parsedChoice(c, r, d.parse));
      return c;
    }
    const c = { ...completionBody(p, r, promptTokens, who).choices[0]!, index };
    if (!echo) return c;
    const lps = promptLps ? echoLogprobs(promptLps, c.logprobs, echo.text.length) : c.logprobs;
    return { ...c, text: echo.text + c.text, logprobs: lps };
  });
  const usage = usageOf(
    promptTokens,
    rs.reduce((a, r) => a + r.usage.completionTokens, 0),
  );
  const merged = mergedOutput(outputs);
  if (merged) d.recordOutput?.(merged);
  res.json({ id: who.id, object: p.kind === 'chat' ? 'chat.completion' : 'text_completion', created: who.created, model: who.model, choices, usage });
  sr.answered();
}

/** Every choice's chunks carry its index; choices stream as their tokens come, interleaved. */
function withIndex(payload: unknown, index: number): unknown {
  const choices = (payload as { choices?: { index: number }[] }).choices;
  if (choices) for (const c of choices) c.index = index;
  return payload;
}

async function answerStream(d: ChoicesDeps, gens: Generation[], group: Generation, echo: Echo | undefined): Promise<void> {
  const { sr, req, res, parsed: p, built } = d;
  const promptTokens = built.promptTokens;
  const who: ResponseIdentity = newIdentity(p.kind, d.modelName);
  // Writes go through sse-writer.ts as on the one-choice path: each choice's delivered batch of tokens is one event,
  // and a full socket (a slow reader) is waited out rather than buffered without bound.
  const out = new SseWriter(res);
  const send = (payload: unknown): void => out.write(sseFrame(payload));
  const encoders = Array.from({ length: p.n }, () => new StreamEncoder(p, who));
  writeSseHead(res);
  sr.streaming();
  const usageField = p.includeUsage ? { usage: null } : {};
  const base = { id: who.id, object: p.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: who.created, model: who.model };
  for (let i = 0; i < p.n; i++) for (const c of encoders[i]!.opening()) send(withIndex(c, i));
  if (echo) {
    const promptLps = echo.logprobs ? await echo.logprobs : undefined;
    for (let i = 0; i < p.n; i++) {
      const lp = promptLps ? echoLogprobs(promptLps, null, 0) : null;
      send({ ...base, choices: [{ index: i, text: echo.text, logprobs: lp, finish_reason: null }], ...usageField });
      // The generated tokens' text offsets continue after the echoed prompt.
      encoders[i]!.piece({ text: echo.text });
    }
  }
  const answers = d.parse ? gens.map(() => new StreamedAnswer(d.parse!)) : undefined;
  await Promise.all(
    gens.map(async (g, i) => {
      for await (const batch of g.batches()) {
        if (sr.cancelled) break;
        const chunk = coalesce(batch);
        if (answers) {
          for (const c of streamedChunks(encoders[i]!, answers[i]!.push(chunk.text), chunk.logprobs)) send(withIndex(c, i));
        } else {
          const c = encoders[i]!.piece(chunk);
          if (c !== undefined) send(withIndex(c, i));
        }
        const full = out.ready();
        if (full) await full;
      }
    }),
  );
  const total = await group.result;
  if (!sr.resultArrived(total)) return;
  const rs = gens.length > 0 ? await Promise.all(gens.map((g) => g.result)) : Array.from({ length: p.n }, () => emptyResult(promptTokens));
  if (answers) {
    answers.forEach((a, i) => {
      for (const c of streamedChunks(encoders[i]!, a.finish())) send(withIndex(c, i));
    });
    const merged = mergedOutput(answers.map((a) => a.output()));
    if (merged) d.recordOutput?.(merged);
  }
  rs.forEach((r, i) => {
    const fr = answers ? toolFinishReason(r.finishReason, answers[i]!.callCount) : finishReasonOf(r.finishReason);
    send(
      p.kind === 'chat'
        ? { ...base, choices: [{ index: i, delta: {}, logprobs: null, finish_reason: fr }], ...usageField }
        : { ...base, choices: [{ index: i, text: '', logprobs: null, finish_reason: fr }], ...usageField },
    );
  });
  if (p.includeUsage)
    send({
      ...base,
      choices: [],
      usage: usageOf(
        promptTokens,
        rs.reduce((a, r) => a + r.usage.completionTokens, 0),
      ),
    });
  out.end(SSE_DONE);
  sr.answered();
  req.log?.debug({ generations: gens.map((g) => g.id), choices: p.n }, 'stream finished');
}
