// Authentication for the HTTP control plane, both kinds in one place:
//
// - /v1 API keys (`createV1Auth`): any key in server.apiKeys opens every /v1 route; no keys = no authentication.
//   Entries are `sha256:HEX` digests (`tuneloop hash-token`) or, still accepted, plain keys hashed at startup.
// - /api bearer tokens with roles (`createApiAuth`) for the tuner's REST API (/api/tuner, /api/proposals,
//   /api/config, /api/audit) and the weekly reports (/api/reports). Only each token's SHA-256 is configured
//   (auth.tokens), so the config file, env and logs never hold a usable token. Roles are ordered viewer < approver <
//   admin. With no tokens configured the reads stay open (anonymous viewer) and every change is refused: an
//   unconfigured server shows what the tuner does but nobody can steer it.
//
// Both hash the presented credential and compare it in constant time against every configured digest, without
// stopping at the first match, so response timing reveals neither how much of a digest matched nor which entry did.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Actor } from '../tuner/types.js';
import { API_ROLES, type ApiRole, type ApiToken } from '../config/schema.js';
import { ControlPlaneError } from './errors.js';
import { apiKeyDigest, credentialDigest } from './security.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** Who is calling, set by ApiAuth.requireRole. */
    actor?: Actor;
  }
}

/** The hex SHA-256 of a token, as auth.tokens[].sha256 wants it (`tuneloop hash-token`). */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** True when `role` may do what `min` may (viewer < approver < admin). */
export function roleAtLeast(role: ApiRole, min: ApiRole): boolean {
  return API_ROLES.indexOf(role) >= API_ROLES.indexOf(min);
}

/** The actor of reads when no tokens are configured. */
export const ANONYMOUS: Readonly<Actor> = Object.freeze({ name: 'anonymous', role: 'viewer' });

export interface ApiAuth {
  /** False when no tokens are configured (reads open, changes refused). */
  readonly enabled: boolean;
  /** Middleware: 401 without a valid token, 403 with too low a role; sets req.actor. */
  requireRole(min: ApiRole): RequestHandler;
  /** The configured token a bearer `Authorization` header carries, or undefined. */
  authenticate(authorization: string | undefined): Actor | undefined;
}

// ---- /v1: API keys ----------------------------------------------------------------------------------------------

/** Middleware for /v1: 401 in OpenAI's words unless the bearer key is one of `keys` (server.apiKeys); none = open. */
export function createV1Auth(keys: readonly string[]): RequestHandler {
  const digests = keys.map(apiKeyDigest);
  return (req: Request, _res: Response, next: NextFunction): void => {
    if (digests.length === 0) return next();
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(.+)$/i.exec(h.trim()) : null;
    if (!m) {
      return next(new ControlPlaneError('CP_ERR_UNAUTHORIZED', "You didn't provide an API key: use the header 'Authorization: Bearer KEY'"));
    }
    const d = credentialDigest(m[1]!);
    // Every key is compared, always (no early exit at a match): timing does not tell which entry matched.
    let ok = false;
    for (const k of digests) ok = timingSafeEqual(k, d) || ok;
    if (!ok) return next(new ControlPlaneError('CP_ERR_UNAUTHORIZED', 'Incorrect API key provided'));
    next();
  };
}

// ---- /api: tokens with roles ----------------------------------------------------------------------------------

const READ_METHODS = new Set(['GET', 'HEAD']);

function unauthorized(message: string, invalidToken: boolean): ControlPlaneError {
  // RFC 6750 §3: a 401 names the scheme; error="invalid_token" when a token was sent but is not accepted.
  const challenge = invalidToken ? 'Bearer realm="tuneloop", error="invalid_token"' : 'Bearer realm="tuneloop"';
  return new ControlPlaneError('CP_ERR_UNAUTHORIZED', message, { headers: { 'WWW-Authenticate': challenge } });
}

export function createApiAuth(tokens: readonly ApiToken[]): ApiAuth {
  for (const t of tokens) {
    // loadConfig checks this already; a programmatic caller gets the same guarantee (timingSafeEqual needs 32 bytes).
    if (!/^[0-9a-f]{64}$/.test(t.sha256)) throw new TypeError(`auth token '${t.name}': sha256 must be 64 lowercase hex digits`);
  }
  // Equal-length digests for timingSafeEqual: the configured hex is decoded once here.
  const entries = tokens.map((t) => ({ actor: Object.freeze({ name: t.name, role: t.role }), digest: Buffer.from(t.sha256, 'hex') }));
  const enabled = entries.length > 0;

  const bearer = (h: string | undefined): string | undefined => {
    const m = typeof h === 'string' ? /^Bearer\s+(.+)$/i.exec(h.trim()) : null;
    return m ? m[1] : undefined;
  };

  const match = (token: string): Actor | undefined => {
    const d = createHash('sha256').update(token, 'utf8').digest();
    let found: Actor | undefined;
    // Every entry is compared, always: no early exit once one matches.
    for (const e of entries) {
      const same = timingSafeEqual(e.digest, d);
      found = same ? e.actor : found;
    }
    return found;
  };

  const authenticate = (authorization: string | undefined): Actor | undefined => {
    const token = bearer(authorization);
    return token === undefined ? undefined : match(token);
  };

  const requireRole =
    (min: ApiRole): RequestHandler =>
    (req: Request, _res: Response, next: NextFunction): void => {
      if (!enabled) {
        if (min === 'viewer' && READ_METHODS.has(req.method)) {
          req.actor = ANONYMOUS;
          return next();
        }
        return next(
          new ControlPlaneError(
            'CP_ERR_FORBIDDEN',
            'Changes through the API are disabled: no API tokens are configured. Add approver or admin entries to auth.tokens ' + '(see `tuneloop hash-token`)',
          ),
        );
      }
      const token = bearer(req.headers.authorization);
      if (token === undefined) {
        return next(unauthorized("You didn't provide an API token: use the header 'Authorization: Bearer TOKEN'", false));
      }
      const actor = match(token);
      if (!actor) return next(unauthorized('Incorrect API token provided', true));
      // Actors from tokens always carry an API role ('system' is the tuner itself and never comes from a token).
      if (!roleAtLeast(actor.role as ApiRole, min)) {
        return next(new ControlPlaneError('CP_ERR_FORBIDDEN', `This needs the ${min} role; the token '${actor.name}' has the ${actor.role} role`));
      }
      req.actor = actor;
      next();
    };

  return { enabled, requireRole, authenticate };
}

// ---- `tuneloop hash-token` ------------------------------------------------------------------------------------

export const HASH_TOKEN_USAGE = `usage:
  tuneloop hash-token [TOKEN]
  Prints the hex SHA-256 of TOKEN for auth.tokens[].sha256 (and, prefixed with sha256:, for server.apiKeys).
  Without TOKEN it is read from stdin (surrounding whitespace and the final newline are dropped), which keeps it
  out of shell history: hash-token < token-file
`;

export interface HashTokenIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

async function readAll(s: NodeJS.ReadableStream): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(parts).toString('utf8');
}

/** `tuneloop hash-token [TOKEN]`: exit code 0, or 1 for a usage error or an empty token. */
export async function hashTokenCommand(argv: string[], io: HashTokenIo = process): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(HASH_TOKEN_USAGE);
    return 0;
  }
  if (argv.length > 1) {
    io.stderr.write(`tuneloop hash-token: expected at most one TOKEN, got ${argv.length} arguments\n${HASH_TOKEN_USAGE}`);
    return 1;
  }
  if (argv.length === 0 && io.stdin.isTTY) io.stderr.write('reading the token from stdin (end with Ctrl-D)\n');
  // A bearer header cannot carry surrounding whitespace (it is trimmed), so neither may the hashed token.
  const token = (argv[0] ?? (await readAll(io.stdin))).trim();
  if (token === '') {
    io.stderr.write(`tuneloop hash-token: the token is empty\n${HASH_TOKEN_USAGE}`);
    return 1;
  }
  io.stdout.write(`${hashToken(token)}\n`);
  return 0;
}
