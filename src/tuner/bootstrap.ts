// Putting the tuner together for `tuneloop serve`: open the store *before* the engine loads (the store decides which
// settings the engine starts with), then build the metrics source, the tuner and its cron schedule (with the weekly
// report job), and keep every firing alert the inbox receives in the store for the weekly report.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import type { EngineOptions } from '../engine/types.js';
import type { AlertInbox, ReceivedAlert } from '../alerts/inbox.js';
import type { TuneloopConfig } from '../config/schema.js';
import type { Metrics } from '../metrics/registry.js';
import { packageRoot } from '../defaults.js';
import { RegistrySource, type MetricsSource } from './monitor.js';
import { PrometheusSource } from './prometheus-source.js';
import { startSchedule, type TunerSchedule } from './schedule.js';
import { formatIsoWeek, lastCompleteIsoWeek } from './report/iso-week.js';
import { reportOptionsFromConfig, writeWeeklyReport, type WrittenReport } from './report/writer.js';
import { TunerStore, type SettingsVersion } from './store.js';
import { Tuner, resolveStartupSettings, settingsFromConfig, type TunerDeps } from './tuner.js';
import type { LiveSettings } from './types.js';

/** The engine's options with the tuner-managed knobs taken from the live settings version. */
export function engineOptionsWithSettings(base: EngineOptions, s: LiveSettings): EngineOptions {
  return { ...base, ...s.layout, scheduler: { ...base.scheduler, ...s.scheduler } };
}

export interface OpenedStore {
  store: TunerStore;
  live: SettingsVersion;
}

/** Open the store and decide the startup settings (see resolveStartupSettings). */
export function openTunerStore(config: TuneloopConfig): OpenedStore {
  const store = TunerStore.open(config.tuner.storePath);
  try {
    return { store, live: resolveStartupSettings(store, settingsFromConfig(config)) };
  } catch (e) {
    store.close();
    throw e;
  }
}

/** A fixed perplexity probe set: the first `count` windows of `length` tokens of the shipped validation slice. */
export function probeTokens(engine: Engine, count = 3, length = 64): number[][] {
  let text: string;
  try {
    text = readFileSync(join(packageRoot(), 'models', 'validation-slice.txt'), 'utf8');
  } catch {
    text = 'The quick brown fox jumps over the lazy dog. '.repeat(40);
  }
  const ids = engine.tokenize(text.slice(0, 20_000), { addBos: true });
  const len = Math.min(length, engine.info.contextLength);
  const out: number[][] = [];
  for (let i = 0; i + len <= ids.length && out.length < count; i += len) out.push(ids.slice(i, i + len));
  return out;
}

export interface RunningTuner {
  tuner: Tuner;
  requests: RegistrySource;
  schedule: TunerSchedule | undefined;
  /** Write one week's report now (default: the last complete ISO week), as the cron job does. */
  writeReport(week?: string): Promise<WrittenReport>;
  close(): Promise<void>;
}

export async function startTuner(args: {
  config: TuneloopConfig;
  engine: Engine;
  store: TunerStore;
  logger: Logger;
  metrics?: Metrics;
  alerts?: AlertInbox;
  /** Off in tests that drive the tuner by hand. */
  cron?: boolean;
  now?: () => number;
  loadShadowEngine?: TunerDeps['loadShadowEngine'];
}): Promise<RunningTuner> {
  const { config, engine, store, logger } = args;
  const t = config.tuner;
  const requests = new RegistrySource({
    engine: () => (engine.isClosed ? undefined : engine),
    slo: config.slo,
    ...(args.now ? { now: args.now } : {}),
    settingsVersion: () => store.currentSettings()?.version ?? 0,
  });
  const source: MetricsSource =
    t.metricsSource === 'prometheus'
      ? new PrometheusSource({ url: t.prometheusUrl, slo: config.slo, windowSeconds: 60, ...(t.prometheusSelector ? { selector: t.prometheusSelector } : {}) })
      : requests;
  const tuner = await Tuner.create({
    engine,
    store,
    config,
    logger,
    source,
    requests,
    probeTokens: probeTokens(engine),
    ...(args.metrics ? { metrics: args.metrics } : {}),
    ...(args.now ? { now: args.now } : {}),
    ...(args.loadShadowEngine ? { loadShadowEngine: args.loadShadowEngine } : {}),
  });
  const now = args.now ?? Date.now;
  const reportGauge = args.metrics?.tuner.reportLastTimestamp;
  reportGauge?.set((store.reports(1)[0]?.generatedMs ?? 0) / 1000);
  const writeReport = async (week?: string): Promise<WrittenReport> => {
    const written = await writeWeeklyReport(store, { ...reportOptionsFromConfig(config), week: week ?? formatIsoWeek(lastCompleteIsoWeek(now(), t.timezone)) }, now());
    reportGauge?.set(written.record.generatedMs / 1000);
    logger.info({ week: written.week, paths: written.paths, rewritten: written.rewritten }, 'weekly report written');
    return written;
  };
  // Alerts are kept for the weekly report; a store failure must not break the webhook (the inbox still has it).
  const keepAlert = (a: ReceivedAlert): void => {
    try {
      store.insertAlert(a);
    } catch (err) {
      logger.error({ err, alert: a.labels['alertname'] }, 'could not store a received alert');
    }
  };
  args.alerts?.on('alert', keepAlert);
  const schedule =
    args.cron === false || !t.enabled
      ? undefined
      : startSchedule(
          { monitorCron: t.monitorCron, analyzeCron: t.analyzeCron, reportCron: t.reportCron, timezone: t.timezone, alertTriggersAnalysis: t.alertTriggersAnalysis },
          { tuner, store, logger, ...(args.alerts ? { alerts: args.alerts } : {}), report: () => writeReport() },
        );
  return {
    tuner,
    requests,
    schedule,
    writeReport,
    async close() {
      args.alerts?.off('alert', keepAlert);
      await schedule?.stop();
      await tuner.close();
    },
  };
}
