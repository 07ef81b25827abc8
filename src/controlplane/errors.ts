// One catalogue of every error the HTTP control plane answers with. Each code fixes the HTTP status and the
// OpenAI error `type`, so clients written against OpenAI (the official SDKs map status → exception class) behave
// the same here. The wire `code` follows OpenAI's where one exists (model_not_found, context_length_exceeded,
// invalid_api_key), so tools that branch on it keep working. Below the catalogue: the mappings from what other layers
// throw (engine, tuner, body parser, router) into it, and the one function that writes an error answer.
import type { Response } from 'express';
import { isEngineError, type EngineError } from '../engine/errors.js';
import type { TunerError } from '../tuner/facade.js';

export interface ErrorSpec {
  status: number;
  /** OpenAI's error.type. */
  type: string;
  /** error.code on the wire. */
  code: string;
}

export const CP_ERRORS = {
  CP_ERR_INVALID_REQUEST: { status: 400, type: 'invalid_request_error', code: 'invalid_request' },
  CP_ERR_MALFORMED_JSON: { status: 400, type: 'invalid_request_error', code: 'malformed_json' },
  CP_ERR_CONTEXT_OVERFLOW: { status: 400, type: 'invalid_request_error', code: 'context_length_exceeded' },
  CP_ERR_UNAUTHORIZED: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  CP_ERR_FORBIDDEN: { status: 403, type: 'permission_error', code: 'forbidden' },
  CP_ERR_MODEL_NOT_FOUND: { status: 404, type: 'invalid_request_error', code: 'model_not_found' },
  CP_ERR_ROUTE_NOT_FOUND: { status: 404, type: 'invalid_request_error', code: 'not_found' },
  CP_ERR_RESOURCE_NOT_FOUND: { status: 404, type: 'invalid_request_error', code: 'resource_not_found' },
  CP_ERR_CONFLICT: { status: 409, type: 'invalid_request_error', code: 'conflict' },
  CP_ERR_TUNER_BUSY: { status: 409, type: 'invalid_request_error', code: 'tuner_busy' },
  CP_ERR_BODY_TOO_LARGE: { status: 413, type: 'invalid_request_error', code: 'body_too_large' },
  CP_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, type: 'invalid_request_error', code: 'unsupported_media_type' },
  CP_ERR_QUEUE_FULL: { status: 429, type: 'rate_limit_error', code: 'queue_full' },
  CP_ERR_RATE_LIMITED: { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  CP_ERR_INTERNAL: { status: 500, type: 'server_error', code: 'internal_error' },
  CP_ERR_DRAINING: { status: 503, type: 'server_error', code: 'server_draining' },
  CP_ERR_ENGINE_CLOSED: { status: 503, type: 'server_error', code: 'engine_closed' },
  CP_ERR_TUNER_PAUSED: { status: 503, type: 'server_error', code: 'tuner_paused' },
  CP_ERR_TIMEOUT: { status: 504, type: 'timeout_error', code: 'timeout' },
} as const satisfies Record<string, ErrorSpec>;

export type ControlPlaneErrorCode = keyof typeof CP_ERRORS;

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

export class ControlPlaneError extends Error {
  readonly code: ControlPlaneErrorCode;
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  /** Extra response headers (Retry-After on 429/503). */
  readonly headers: Record<string, string>;

  constructor(code: ControlPlaneErrorCode, message: string, options: { param?: string | null; headers?: Record<string, string> } = {}) {
    super(message);
    this.name = 'ControlPlaneError';
    this.code = code;
    this.status = CP_ERRORS[code].status;
    this.type = CP_ERRORS[code].type;
    this.param = options.param ?? null;
    this.headers = options.headers ?? {};
  }

  toResponse(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: CP_ERRORS[this.code].code } };
  }
}

export function isControlPlaneError(e: unknown): e is ControlPlaneError {
  return e instanceof ControlPlaneError;
}

/** Seconds a refused client should wait; the queue drains in well under a second on the models we serve. */
export const RETRY_AFTER_S = 1;

/**
 * Translate an engine refusal into the HTTP answer. `promptParam` names the request field that held the prompt
 * ('prompt' for completions, 'messages' for chat) so a context overflow points at the right field.
 */
export function fromEngineError(e: EngineError, promptParam = 'prompt'): ControlPlaneError {
  switch (e.code) {
    case 'INVALID_ARGUMENT':
      return new ControlPlaneError('CP_ERR_INVALID_REQUEST', e.message);
    case 'CONTEXT_OVERFLOW':
      return new ControlPlaneError('CP_ERR_CONTEXT_OVERFLOW', e.message, { param: promptParam });
    case 'QUEUE_FULL':
      return new ControlPlaneError('CP_ERR_QUEUE_FULL', `Server overloaded: ${e.message}; retry later`, {
        headers: { 'Retry-After': String(RETRY_AFTER_S) },
      });
    case 'TIMEOUT':
      return new ControlPlaneError('CP_ERR_TIMEOUT', e.message);
    case 'ENGINE_CLOSED':
      return new ControlPlaneError('CP_ERR_ENGINE_CLOSED', 'The model is not loaded (the engine is closed)', {
        headers: { 'Retry-After': String(RETRY_AFTER_S) },
      });
    case 'MODEL_NOT_FOUND':
      return new ControlPlaneError('CP_ERR_MODEL_NOT_FOUND', e.message, { param: 'model' });
    default:
      // CANCELLED, OUT_OF_MEMORY, INTERNAL, model-file errors: nothing the client did; report as a server fault.
      return new ControlPlaneError('CP_ERR_INTERNAL', `${e.code}: ${e.message}`);
  }
}

/** The 404 for a request naming a model this server does not serve. */
export function modelNotFound(requested: string, served: string): ControlPlaneError {
  return new ControlPlaneError('CP_ERR_MODEL_NOT_FOUND', `The model '${requested}' does not exist (this server serves '${served}')`, {
    param: 'model',
  });
}

/** Translate a tuner refusal (TunerControl) into the HTTP answer; the message is the tuner's own sentence. */
export function fromTunerError(e: TunerError): ControlPlaneError {
  switch (e.code) {
    case 'NOT_FOUND':
      return new ControlPlaneError('CP_ERR_RESOURCE_NOT_FOUND', e.message);
    case 'CONFLICT':
      return new ControlPlaneError('CP_ERR_CONFLICT', e.message);
    case 'BUSY':
      return new ControlPlaneError('CP_ERR_TUNER_BUSY', e.message);
    case 'INVALID':
      return new ControlPlaneError('CP_ERR_INVALID_REQUEST', e.message);
    case 'PAUSED':
      return new ControlPlaneError('CP_ERR_TUNER_PAUSED', e.message);
    case 'FORBIDDEN':
      return new ControlPlaneError('CP_ERR_FORBIDDEN', e.message);
  }
}

// ---- anything thrown on the HTTP path → the catalogue ---------------------------------------------------------

/** Body-parser failures carry `type` and `status`; map them into the catalogue. */
export function fromBodyParserError(err: unknown): ControlPlaneError | undefined {
  if (typeof err !== 'object' || err === null || !('type' in err)) return undefined;
  const t = err.type;
  // body-parser's errors are http-errors instances (Error); anything else has no message worth echoing.
  const msg = err instanceof Error ? err.message : 'unreadable body';
  if (t === 'entity.too.large') return new ControlPlaneError('CP_ERR_BODY_TOO_LARGE', `Request body too large: ${msg}`);
  if (t === 'entity.parse.failed') return new ControlPlaneError('CP_ERR_MALFORMED_JSON', `The request body is not valid JSON: ${msg}`, { param: 'body' });
  if (t === 'encoding.unsupported' || t === 'charset.unsupported') return new ControlPlaneError('CP_ERR_UNSUPPORTED_MEDIA_TYPE', msg);
  if (t === 'request.aborted' || t === 'request.size.invalid') return new ControlPlaneError('CP_ERR_INVALID_REQUEST', msg);
  return undefined;
}

/** Errors from the HTTP stack that carry a 4xx status but no body-parser `type`: a malformed percent-encoding in a
 *  path parameter (the router's URIError, status 400), a body that is not in its declared Content-Encoding (zlib
 *  errors wrapped by body-parser). They are the client's fault: answer 4xx, never 500. */
export function fromHttpStatusError(err: unknown): ControlPlaneError | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const st = Number((err as { status?: unknown; statusCode?: unknown }).status ?? (err as { statusCode?: unknown }).statusCode);
  if (!(st >= 400 && st < 500)) return undefined;
  const msg = err instanceof URIError ? 'The request path is not valid percent-encoding' : `The request could not be read: ${(err as Error).message ?? 'bad request'}`;
  if (st === 413) return new ControlPlaneError('CP_ERR_BODY_TOO_LARGE', msg);
  if (st === 415) return new ControlPlaneError('CP_ERR_UNSUPPORTED_MEDIA_TYPE', msg);
  return new ControlPlaneError('CP_ERR_INVALID_REQUEST', msg);
}

/** Whatever was thrown, as the catalogue's answer: unknown errors are a 500 that names nothing internal.
 *  `promptParam` is the field a context overflow points at ('prompt', or 'messages' for chat). */
export function toControlPlaneError(err: unknown, promptParam = 'prompt'): ControlPlaneError {
  if (isControlPlaneError(err)) return err;
  if (isEngineError(err)) return fromEngineError(err, promptParam);
  return fromBodyParserError(err) ?? fromHttpStatusError(err) ?? new ControlPlaneError('CP_ERR_INTERNAL', 'The server had an error while processing your request');
}

/** A refusal's log fields. JSON.parse's message quotes the start of the body (a prompt, say): that one is not logged. */
export function refusalLog(cpe: ControlPlaneError): { code: string; param: string | null; message?: string } {
  const fields = { code: cpe.code, param: cpe.param };
  return cpe.code === 'CP_ERR_MALFORMED_JSON' ? fields : { ...fields, message: cpe.message };
}

/** Answer with `err` (its status, headers and OpenAI-shaped body), counting it by its wire code. */
export function sendError(res: Response, err: ControlPlaneError, observeError?: (reason: string) => void): void {
  observeError?.(CP_ERRORS[err.code].code);
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  res.status(err.status).json(err.toResponse());
}
