// The Alertmanager webhook receiver: POST /api/alerts takes Alertmanager's webhook payload (version 4) and records it
// in the server's `AlertInbox` (src/alerts/); GET /api/alerts lists what was recorded. Both routes need
// `Authorization: Bearer <alerts.webhookToken>`; with no token configured the routes do not exist (404), so an
// unconfigured server never accepts alerts from anyone.
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { AlertInbox, AlertStatus, AlertmanagerWebhook } from '../alerts/inbox.js';
import { AlertWebhookError, parseWebhook } from '../alerts/webhook.js';
import { ControlPlaneError } from './errors.js';

/** Check a webhook body; throws CP_ERR_INVALID_REQUEST (400) naming the first bad field as its param. */
export function parseAlertmanagerWebhook(body: unknown): AlertmanagerWebhook {
  try {
    return parseWebhook(body);
  } catch (e) {
    if (e instanceof AlertWebhookError) throw new ControlPlaneError('CP_ERR_INVALID_REQUEST', e.message, { param: e.field });
    throw e;
  }
}

// ---- routes --------------------------------------------------------------------------------------------------

const sha = (s: string): Buffer => createHash('sha256').update(s).digest();

export interface AlertsRouterOptions {
  inbox: AlertInbox;
  /** alerts.webhookToken; '' disables the routes (404). */
  token: string;
  bodyLimit: number | string;
}

/** Router for /api/alerts (mount at /api). Errors go to the app's error handler (OpenAI-shaped bodies). */
export function alertsRouter(o: AlertsRouterOptions): Router {
  const router = express.Router();
  const digest = o.token === '' ? undefined : sha(o.token);
  const auth = (req: Request, _res: Response, next: NextFunction): void => {
    if (!digest) {
      return next(
        new ControlPlaneError(
          'CP_ERR_ROUTE_NOT_FOUND',
          `Unknown request URL: ${req.method} ${req.baseUrl}${req.path} (the alerts webhook is disabled: set alerts.webhookToken)`,
        ),
      );
    }
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(.+)$/i.exec(h.trim()) : null;
    if (!m || !timingSafeEqual(sha(m[1]!), digest)) {
      o.inbox.reject();
      return next(
        new ControlPlaneError(
          'CP_ERR_UNAUTHORIZED',
          m ? 'Incorrect alerts webhook token provided' : "You didn't provide the alerts webhook token: use the header 'Authorization: Bearer TOKEN'",
        ),
      );
    }
    next();
  };
  router.use('/alerts', auth);
  router.post('/alerts', express.json({ limit: o.bodyLimit }), (req, res) => {
    let payload: AlertmanagerWebhook;
    try {
      payload = parseAlertmanagerWebhook(req.body);
    } catch (e) {
      o.inbox.reject();
      throw e;
    }
    const recorded = o.inbox.record(payload);
    req.log?.info({ receiver: payload.receiver, status: payload.status, alerts: recorded.map((a) => `${a.labels['alertname']}:${a.status}`) }, 'alerts received');
    res.json({ status: 'ok', recorded: recorded.length });
  });
  router.get('/alerts', (req, res) => {
    const s = req.query['status'];
    const filter: { status?: AlertStatus } = s === 'firing' || s === 'resolved' ? { status: s } : {};
    res.json({ object: 'list', data: o.inbox.list(filter), counters: { ...o.inbox.counters } });
  });
  return router;
}
