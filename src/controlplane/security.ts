// The HTTP layer's defences that are not authentication (auth.ts) or input validation (openai/schema.ts):
// security headers on every response, CORS closed unless origins are listed, per-key request rate limits and
// per-key concurrent generation limits, and the log redaction that keeps credentials and prompts out of the logs.
//
// A "key" is the credential a request carries when it is one this server knows (a /v1 API key, an auth.tokens token,
// the alerts webhook token), else the client's address. Unknown tokens count against the address, so sending a fresh
// random token per request does not buy a fresh budget. The address is the TCP peer's: X-Forwarded-For is not
// trusted, so behind a reverse proxy give each client its own key.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ControlPlaneError } from './errors.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** Whom the per-key limits count this request against (see `clientKeyOf`); set on /v1 and /api. */
    clientKey?: string;
  }
}

// ---- security headers -----------------------------------------------------------------------------------------

/** Every route answers JSON, SSE or plain text: a browser may load, run and frame nothing from them. */
export const DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'";

/**
 * Security headers on every response, set before routing. A route that serves something a browser renders replaces
 * the policy with its own `res.setHeader('Content-Security-Policy', …)` before it answers: the later header wins.
 * GET /api/reports/:week?format=html does so (reports-api.ts: inline <style> and data: images, nothing else).
 * Cache-Control no-store on /api, /v1, /tokenize and /detokenize: their answers carry prompts, completions and the
 * tuner's state, and must not stay in a browser or proxy cache (SSE responses set their own no-cache).
 */
export function securityHeaders(): RequestHandler {
  return (req: Request, res: Response, next: NextFunction): void => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Content-Security-Policy', DEFAULT_CSP);
    res.setHeader('Referrer-Policy', 'no-referrer');
    if (/^\/(api|v1|tokenize|detokenize)(\/|$)/.test(req.path)) res.setHeader('Cache-Control', 'no-store');
    next();
  };
}

// ---- CORS -----------------------------------------------------------------------------------------------------

/**
 * CORS, closed by default. Only exact origins from server.corsOrigins get Access-Control-Allow-Origin (never `*`,
 * never credentials: the API authenticates with bearer headers, not cookies). Every OPTIONS request (a preflight) is
 * answered here with 204, before authentication and the rate limit: with the CORS headers for a listed origin,
 * without them otherwise, which makes the browser refuse the real request.
 */
export function cors(origins: readonly string[]): RequestHandler {
  const allowed = new Set(origins);
  return (req: Request, res: Response, next: NextFunction): void => {
    const origin = req.headers.origin;
    const ok = typeof origin === 'string' && allowed.has(origin);
    // Answers differ by Origin once any is allowed: caches must key on it.
    if (allowed.size > 0) res.vary('Origin');
    if (ok) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Expose-Headers', 'x-request-id, retry-after');
    }
    if (req.method !== 'OPTIONS') return next();
    if (ok) {
      res.setHeader('Access-Control-Allow-Methods', 'GET, POST');
      res.setHeader('Access-Control-Allow-Headers', 'authorization, content-type, x-request-id');
      res.setHeader('Access-Control-Max-Age', '600');
    }
    res.status(204).end();
  };
}

// ---- whom a request counts against ----------------------------------------------------------------------------

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * A function from a request to its key: `key:<sha256 hex>` for a known credential, `ip:<address>` otherwise.
 * `known` are the SHA-256 digests of every credential the server accepts. The presented token's digest is compared
 * with all of them in constant time, as auth.ts does, so the limiter leaks no more than authentication does.
 */
export function clientKeyOf(known: readonly Buffer[]): (req: Request) => string {
  return (req) => {
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(.+)$/i.exec(h.trim()) : null;
    if (m) {
      const d = sha256(m[1]!);
      let hit = false;
      for (const k of known) hit = timingSafeEqual(k, d) || hit;
      if (hit) return `key:${d.toString('hex')}`;
    }
    return `ip:${req.socket.remoteAddress ?? 'unknown'}`;
  };
}

/** The digest of a raw credential, for `clientKeyOf`'s list (auth.tokens entries are configured as digests already). */
export function credentialDigest(token: string): Buffer {
  return sha256(token);
}

/** A configured server.apiKeys entry's digest: `sha256:HEX` (from `tuneloop hash-token`) is one already; any other
 *  entry is a plain key, hashed here (still accepted, so existing configs keep working, but warned about at startup). */
export const HASHED_KEY_PREFIX = 'sha256:';
export function apiKeyDigest(entry: string): Buffer {
  return entry.startsWith(HASHED_KEY_PREFIX) ? Buffer.from(entry.slice(HASHED_KEY_PREFIX.length), 'hex') : credentialDigest(entry);
}
export const isPlainApiKey = (entry: string): boolean => !entry.startsWith(HASHED_KEY_PREFIX);

// ---- request rate: token buckets ------------------------------------------------------------------------------

interface Bucket {
  tokens: number;
  atMs: number;
}

/**
 * One token bucket per key: `burst` requests at once, refilled at `perMinute`. In memory, per process. A bucket that
 * has refilled to full is the same as none, so idle keys are dropped on a sweep at most once a minute: the map holds
 * only keys seen in the last `burst / rate` seconds, whatever number of addresses a client cycles through.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private lastSweepMs: number;

  constructor(
    readonly perMinute: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(perMinute > 0) || !(burst >= 1)) throw new RangeError(`RateLimiter: perMinute must be > 0 and burst ≥ 1, got ${perMinute}, ${burst}`);
    this.perMs = perMinute / 60_000;
    this.lastSweepMs = now();
  }

  /** Take one request from `key`'s bucket: 0 when allowed, else the seconds until one is (≥ 1, for Retry-After). */
  take(key: string): number {
    const t = this.now();
    this.sweep(t);
    const b = this.buckets.get(key) ?? { tokens: this.burst, atMs: t };
    b.tokens = Math.min(this.burst, b.tokens + (t - b.atMs) * this.perMs);
    b.atMs = t;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000));
  }

  /** Keys currently tracked (tests). */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(t: number): void {
    if (t - this.lastSweepMs < 60_000) return;
    this.lastSweepMs = t;
    for (const [k, b] of this.buckets) if (b.tokens + (t - b.atMs) * this.perMs >= this.burst) this.buckets.delete(k);
  }
}

/** Middleware for /v1 and /api: sets req.clientKey, then refuses with 429 once the key's bucket is empty. */
export function rateLimit(keyOf: (req: Request) => string, limiter: RateLimiter | undefined): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction): void => {
    req.clientKey = keyOf(req);
    const wait = limiter?.take(req.clientKey) ?? 0;
    if (wait === 0) return next();
    next(
      new ControlPlaneError(
        'CP_ERR_RATE_LIMITED',
        `Rate limit reached: at most ${limiter!.perMinute} requests per minute (bursts of ${limiter!.burst}) per API key or client address ` +
          `(server.rateLimitPerMinute); retry in ${wait} s`,
        { headers: { 'Retry-After': String(wait) } },
      ),
    );
  };
}

// ---- concurrent generations per key ---------------------------------------------------------------------------

/** Counts in-flight generation requests per key; `acquire` refuses beyond `limit` (0 = no limit). */
export class ConcurrencyLimiter {
  private readonly inflight = new Map<string, number>();

  constructor(readonly limit: number) {}

  /** A release function (idempotent) when the key has a slot, undefined when it has `limit` in flight already. */
  acquire(key: string): (() => void) | undefined {
    const n = this.inflight.get(key) ?? 0;
    if (this.limit > 0 && n >= this.limit) return undefined;
    this.inflight.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.inflight.get(key) ?? 1) - 1;
      if (left > 0) this.inflight.set(key, left);
      else this.inflight.delete(key);
    };
  }

  /** In-flight requests of `key` (tests). */
  count(key: string): number {
    return this.inflight.get(key) ?? 0;
  }
}

// ---- logs -----------------------------------------------------------------------------------------------------

/**
 * pino `redact` paths: credentials and request or response text, should a log call ever pass them. The app's own
 * log lines carry none of them (the request line logs the path, never the query string or headers); this is the
 * second line of defence, for an `err` or object logged whole.
 */
export const LOG_REDACT_PATHS: readonly string[] = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  '*.headers.authorization',
  'apiKeys',
  'token',
  'webhookToken',
  '*.token',
  '*.webhookToken',
  'prompt',
  'messages',
  '*.prompt',
  '*.messages',
  'body',
  '*.body',
];
