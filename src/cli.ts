// `tuneloop` command line. Subcommands: serve (the OpenAI-compatible server; the default of `npm start`),
// generate (one completion from a model), inspect (what a GGUF file holds, from its header), tokenize (token ids of a
// text under a GGUF's vocabulary, vocabulary-only files included), load (a load generator
// against a running server), hash-token (the SHA-256 of an API token for auth.tokens), report (the weekly
// performance report from the tuner store).
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { Engine, EngineError, WEIGHTS_POLICIES, type WeightsPolicy } from './engine/index.js';
import { defaultModelPath, resolveModelArg } from './defaults.js';
import { SERVE_USAGE, serveCommand } from './serve.js';
import { LOAD_USAGE, loadCommand } from './loadgen/index.js';
import { DASHBOARDS_USAGE, dashboardsCommand } from './observability/dashboards.js';
import { HASH_TOKEN_USAGE, hashTokenCommand } from './controlplane/auth.js';
import { REPORT_USAGE, reportCommand } from './tuner/report/command.js';
import { INSPECT_USAGE, inspectCommand } from './inspect-command.js';
import { TOKENIZE_USAGE, tokenizeCommand } from './tokenize-command.js';

const USAGE = `${SERVE_USAGE}${LOAD_USAGE}${DASHBOARDS_USAGE}${HASH_TOKEN_USAGE}${REPORT_USAGE}${INSPECT_USAGE}${TOKENIZE_USAGE}usage:
  tuneloop generate [--model PATH] --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K] [--top-p P]
                    [--seed N] [--quant ${WEIGHTS_POLICIES.join('|')}] [--threads N] [--json]
      --quant: the weights policy (default native: the file's own types; int8/int4 = q8_0/q4_0)
`;

function num(name: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new EngineError('INVALID_ARGUMENT', `--${name} expects a number, got '${v}'`);
  return n;
}

async function generate(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      prompt: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      quant: { type: 'string' },
      threads: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const model = values.model !== undefined ? resolveModelArg(values.model) : defaultModelPath();
  if (!values.model && !existsSync(model)) {
    throw new EngineError('MODEL_NOT_FOUND', `the embedded default model ${model} is missing; pass --model PATH`);
  }
  if (values.prompt === undefined) throw new EngineError('INVALID_ARGUMENT', '--prompt is required');
  const quant = (values.quant ?? 'native') as WeightsPolicy;
  if (!WEIGHTS_POLICIES.includes(quant)) {
    throw new EngineError('INVALID_ARGUMENT', `--quant expects one of ${WEIGHTS_POLICIES.join(', ')}, got '${values.quant}'`);
  }
  const threads = values.threads === undefined ? undefined : num('threads', values.threads, 1);
  const engine = await Engine.load({ model, weights: quant, ...(threads !== undefined ? { threads } : {}) });
  try {
    const gen = engine.generate({
      prompt: values.prompt,
      maxTokens: num('max-tokens', values['max-tokens'], 64),
      temperature: num('temperature', values.temperature, 0.8),
      topK: num('top-k', values['top-k'], 0),
      topP: num('top-p', values['top-p'], 1),
      ...(values.seed !== undefined ? { seed: num('seed', values.seed, 0) } : {}),
    });
    if (!values.json) {
      process.stdout.write(values.prompt);
      for await (const chunk of gen) process.stdout.write(chunk.text);
      process.stdout.write('\n');
    }
    const r = await gen.result;
    if (values.json) {
      const t = r.timings;
      process.stdout.write(
        JSON.stringify({
          text: r.text,
          tokens: r.tokens,
          finish_reason: r.finishReason,
          usage: { prompt_tokens: r.usage.promptTokens, completion_tokens: r.usage.completionTokens },
          timings: {
            load_ms: engine.info.loadMs,
            prefill_ms: t.prefillMs,
            decode_ms: t.decodeMs,
            prefill_tokens_per_s: t.prefillTokensPerS,
            decode_tokens_per_s: t.decodeTokensPerS,
          },
        }) + '\n',
      );
    }
    return 0;
  } finally {
    await engine.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'serve':
        return await serveCommand(rest);
      case 'generate':
        return await generate(rest);
      case 'load':
        return await loadCommand(rest);
      case 'dashboards':
        return await dashboardsCommand(rest);
      case 'hash-token':
        return await hashTokenCommand(rest);
      case 'report':
        return await reportCommand(rest);
      case 'inspect':
        return inspectCommand(rest);
      case 'tokenize':
        return tokenizeCommand(rest);
      case undefined:
      case '--help':
      case 'help':
        process.stdout.write(USAGE);
        return cmd === undefined ? 1 : 0;
      default:
        process.stderr.write(`unknown command '${cmd}'\n${USAGE}`);
        return 1;
    }
  } catch (e) {
    if (e instanceof EngineError) {
      // One line, never a stack trace: the code and the message (which names the file and what is wrong with it).
      process.stderr.write(`tuneloop: ${e.code}: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
      return 2;
    }
    if (e instanceof TypeError && 'code' in e && String((e as { code: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`tuneloop: ${e.message}\n${USAGE}`);
      return 1;
    }
    throw e;
  }
}
