// The tuner's REST API (mount at /api): status and on-demand runs, proposals and their approval, the live settings,
// their history and rollback, and the audit log. Every route names the least role it needs (auth.ts); the routes only
// validate input, call `TunerControl` and shape the answer, so they read the same against the real tuner or a fake.
// Errors go to the app's error handler in the OpenAI error shape: tuner refusals through fromTunerError (404, 409,
// 400, 503), bad input as 400 naming the parameter. Only the routes below are matched: any other /api path falls
// through (to /api/alerts' router before this one, or to the app's 404).
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { isTunerError, type TunerControl } from '../tuner/facade.js';
import type { Actor, ProposalState } from '../tuner/types.js';
import type { ApiAuth } from './auth.js';
import { ControlPlaneError, fromTunerError } from './errors.js';
import { PROPOSAL_STATES } from '../metrics/tuner-families.js';

export interface TunerRouterOptions {
  tuner: TunerControl;
  auth: ApiAuth;
  /** express.json limit for the POST bodies. */
  bodyLimit: number | string;
}

/** Longest approval / rejection / rollback comment accepted (it is stored in the audit log). */
export const MAX_COMMENT_CHARS = 2000;
/** Most entries one history or audit page returns. */
export const MAX_PAGE = 1000;

// The metrics' state list is the one the API validates against; fail the build if it drifts from ProposalState.
type Listed = (typeof PROPOSAL_STATES)[number];
const statesComplete: [Exclude<ProposalState, Listed>, Exclude<Listed, ProposalState>] extends [never, never] ? true : never = true;
void statesComplete;

function invalid(param: string, message: string): ControlPlaneError {
  return new ControlPlaneError('CP_ERR_INVALID_REQUEST', message, { param });
}

/** A path or query integer: digits only (no signs, exponents or blanks), within min..max. */
function intParam(raw: unknown, param: string, min: number, max: number): number {
  const n = typeof raw === 'string' && /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw invalid(param, `'${param}' must be an integer between ${min} and ${max}`);
  }
  return n;
}

function optionalInt(raw: unknown, param: string, min: number, max: number): number | undefined {
  return raw === undefined ? undefined : intParam(raw, param, min, max);
}

function stateParam(raw: unknown): ProposalState | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !(PROPOSAL_STATES as readonly string[]).includes(raw)) {
    throw invalid('state', `'state' must be one of ${PROPOSAL_STATES.join(', ')}`);
  }
  return raw as ProposalState;
}

function actionParam(raw: unknown): string | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !/^[\w.:-]{1,100}$/.test(raw)) {
    throw invalid('action', "'action' must be 1 to 100 letters, digits, '_', '.', ':' or '-'");
  }
  return raw;
}

/** A POST route's optional JSON object body ({} when none was sent). Unknown fields are refused, so a typo
 *  ("comments") is not silently dropped from the audit log. */
function bodyOf(req: Request, known: readonly string[]): Record<string, unknown> {
  // An empty body (Content-Length: 0, what curl -X POST and fetch send) needs no Content-Type.
  const hasContent = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  if (hasContent && !req.is('application/json')) {
    throw new ControlPlaneError('CP_ERR_UNSUPPORTED_MEDIA_TYPE', "The request body must be JSON ('Content-Type: application/json')");
  }
  const body: unknown = req.body;
  if (body === undefined) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('body', 'The request body must be a JSON object');
  for (const k of Object.keys(body)) {
    if (!known.includes(k)) throw invalid(k, `Unknown field '${k}'${known.length > 0 ? ` (known: ${known.join(', ')})` : ' (this route takes no fields)'}`);
  }
  return body as Record<string, unknown>;
}

/** The optional `{"comment": "..."}` of approve, reject and rollback; '' when absent. */
function commentOf(req: Request): string {
  const c = bodyOf(req, ['comment'])['comment'];
  if (c === undefined) return '';
  if (typeof c !== 'string') throw invalid('comment', "'comment' must be a string");
  if (c.length > MAX_COMMENT_CHARS) throw invalid('comment', `'comment' must be at most ${MAX_COMMENT_CHARS} characters, got ${c.length}`);
  return c;
}

function actorOf(req: Request): Actor {
  // requireRole runs before every handler; a missing actor is a wiring bug, not a client error.
  if (!req.actor) throw new Error('tuner-api: route reached without requireRole');
  return req.actor;
}

type Handler = (req: Request, res: Response) => unknown;

/** Run a handler; tuner refusals become catalogue errors, anything else goes on to the app's 500. */
const handle =
  (fn: Handler) =>
  async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      await fn(req, res);
    } catch (e) {
      next(isTunerError(e) ? fromTunerError(e) : e);
    }
  };

/** Router for the tuner routes (mount at /api). */
export function tunerRouter(o: TunerRouterOptions): Router {
  const { tuner, auth } = o;
  const router = express.Router();
  // Parsed only after authentication, per route: a router-wide parser would also run for /api paths it does not own.
  const json = express.json({ limit: o.bodyLimit });
  const viewer = auth.requireRole('viewer');
  const approver = auth.requireRole('approver');
  const admin = auth.requireRole('admin');

  router.get(
    '/tuner/status',
    viewer,
    handle((_req, res) => {
      res.json(tuner.status());
    }),
  );

  router.post(
    '/tuner/run',
    approver,
    json,
    handle(async (req, res) => {
      bodyOf(req, []); // takes no fields; a body, if sent, must still be a well-formed (empty) object
      const run = await tuner.runNow('api', actorOf(req));
      req.log?.info({ actor: actorOf(req).name, runId: run.runId, outcome: run.outcome }, 'tuner run requested');
      res.status(202).json({ run });
    }),
  );

  router.get(
    '/proposals',
    viewer,
    handle((req, res) => {
      res.json({ proposals: tuner.listProposals(stateParam(req.query['state'])) });
    }),
  );

  router.get(
    '/proposals/:id',
    viewer,
    handle((req, res) => {
      const id = intParam(req.params['id'], 'id', 1, Number.MAX_SAFE_INTEGER);
      const p = tuner.getProposal(id);
      if (!p) throw new ControlPlaneError('CP_ERR_RESOURCE_NOT_FOUND', `Proposal ${id} does not exist`, { param: 'id' });
      res.json(p);
    }),
  );

  for (const decision of ['approve', 'reject'] as const) {
    router.post(
      `/proposals/:id/${decision}`,
      approver,
      json,
      handle(async (req, res) => {
        const id = intParam(req.params['id'], 'id', 1, Number.MAX_SAFE_INTEGER);
        const comment = commentOf(req);
        const actor = actorOf(req);
        const proposal = decision === 'approve' ? await tuner.approve(id, actor, comment) : await tuner.reject(id, actor, comment);
        req.log?.info({ actor: actor.name, proposal: id, decision, state: proposal.state }, 'proposal decided');
        res.json({ proposal });
      }),
    );
  }

  router.get(
    '/config',
    viewer,
    handle((_req, res) => {
      res.json(tuner.liveConfig());
    }),
  );

  router.get(
    '/config/history',
    viewer,
    handle((req, res) => {
      res.json({ versions: tuner.configHistory(optionalInt(req.query['limit'], 'limit', 1, MAX_PAGE)) });
    }),
  );

  router.post(
    '/config/rollback/:version',
    admin,
    json,
    handle(async (req, res) => {
      const target = intParam(req.params['version'], 'version', 1, Number.MAX_SAFE_INTEGER);
      const comment = commentOf(req);
      const actor = actorOf(req);
      const version = await tuner.rollbackTo(target, actor, comment);
      req.log?.info({ actor: actor.name, to: target, version: version.version }, 'settings rolled back');
      res.json({ version });
    }),
  );

  router.get(
    '/audit',
    viewer,
    handle((req, res) => {
      const filter: { sinceId?: number; limit?: number; action?: string } = {};
      const sinceId = optionalInt(req.query['sinceId'], 'sinceId', 0, Number.MAX_SAFE_INTEGER);
      const limit = optionalInt(req.query['limit'], 'limit', 1, MAX_PAGE);
      const action = actionParam(req.query['action']);
      if (sinceId !== undefined) filter.sinceId = sinceId;
      if (limit !== undefined) filter.limit = limit;
      if (action !== undefined) filter.action = action;
      res.json({ entries: tuner.auditLog(filter) });
    }),
  );

  return router;
}
