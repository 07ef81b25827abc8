// The cron wiring, and nothing else: which tuner job runs when. Each job is recorded in the store by the tuner; a
// failed job is simply run again at its next tick. node-cron's noOverlap drops a tick that arrives while the same
// job still runs; the tuner itself refuses a second analysis cycle while verification is in progress (recorded as
// a skipped run), so a long verification never stacks cycles.
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { AlertInbox, ReceivedAlert } from '../alerts/inbox.js';
import { isTunerError } from './facade.js';
import type { TunerStore } from './store.js';
import { SYSTEM, type Tuner } from './tuner.js';

export interface ScheduleOptions {
  monitorCron: string;
  analyzeCron: string;
  reportCron: string;
  timezone: string;
  alertTriggersAnalysis: boolean;
}

export interface TunerSchedule {
  tasks: ScheduledTask[];
  stop(): Promise<void>;
}

/** Alerts about the tuner's own work (alerts/alerting.rules.yml): analysing again would not help them. */
const TUNER_ALERTS = new Set(['TuneloopShadowSimilarityLow', 'TuneloopProposalAwaitingApproval', 'TuneloopWeeklyReportOverdue']);

/** Alerts that say the service is hurting (critical or warning tier) trigger an out-of-schedule analysis. */
export function alertWantsAnalysis(a: ReceivedAlert): boolean {
  const sev = a.labels['severity'];
  return (sev === 'critical' || sev === 'warning') && !TUNER_ALERTS.has(a.labels['alertname'] ?? '');
}

export function startSchedule(
  o: ScheduleOptions,
  deps: { tuner: Tuner; store: TunerStore; logger: Logger; alerts?: AlertInbox; report?: () => Promise<unknown> },
): TunerSchedule {
  const { tuner, store, logger } = deps;
  const opts = { timezone: o.timezone, noOverlap: true };
  const analyzeJob = async (trigger: 'cron' | 'alert'): Promise<void> => {
    try {
      await tuner.runNow(trigger, SYSTEM);
    } catch (err) {
      if (isTunerError(err) && (err.code === 'BUSY' || err.code === 'PAUSED')) {
        const r = store.startRun('analyze', trigger);
        store.finishRun(r.id, 'skipped', err.message);
        return;
      }
      logger.error({ err }, 'tuner analysis job failed');
    }
  };
  const tasks = [
    cron.schedule(
      o.monitorCron,
      async () => {
        await tuner.monitorTick('cron');
      },
      { ...opts, name: 'tuner-monitor' },
    ),
    cron.schedule(o.analyzeCron, () => analyzeJob('cron'), { ...opts, name: 'tuner-analyze' }),
  ];
  if (deps.report) {
    const report = deps.report;
    tasks.push(
      cron.schedule(
        o.reportCron,
        async () => {
          const r = store.startRun('report', 'cron');
          try {
            await report();
            store.finishRun(r.id, 'ok');
          } catch (err) {
            store.finishRun(r.id, 'error', (err as Error).message);
            logger.error({ err }, 'weekly report job failed');
          }
        },
        { ...opts, name: 'tuner-report' },
      ),
    );
  }
  let onAlert: ((a: ReceivedAlert) => void) | undefined;
  if (deps.alerts && o.alertTriggersAnalysis) {
    onAlert = (a) => {
      if (alertWantsAnalysis(a)) void analyzeJob('alert');
    };
    deps.alerts.on('alert', onAlert);
  }
  return {
    tasks,
    async stop() {
      if (onAlert) deps.alerts?.off('alert', onAlert);
      for (const t of tasks) await t.destroy();
    },
  };
}
