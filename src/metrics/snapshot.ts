// One engine.stats() snapshot per engine per scrape. Every family of a scrape reads the same snapshot, so families
// agree with each other (e.g. the e2e histogram's _count and requests_finished_total), and a scrape costs one crossing
// into the addon per engine however many families there are.
import type { EngineStats, ModelInfo } from '../engine/types.js';
import { RoutingWindow } from './expert-routing.js';

/** What the metrics need from an engine (Engine satisfies it). */
export interface StatsSource {
  stats(): EngineStats;
  readonly info: ModelInfo;
}

export type Role = 'primary' | 'shadow';

export interface EngineBinding {
  role: Role;
  modelName: string;
  /** The engine now serving this role, or undefined while none is loaded (engine_up 0). */
  engine: () => StatsSource | undefined;
}

export interface SourceSnapshot {
  binding: EngineBinding;
  /** `model` and `role` labels. */
  labels: { model: string; role: Role };
  /** Present when the engine is up. */
  stats?: EngineStats;
  info?: ModelInfo;
  /** Busy time over wall time since the previous scrape (since start on the first). */
  utilizationRatio: number;
  /** MoE models: each MoE layer's expert load imbalance (max / mean) over its routing window, undefined while the
   *  window holds too few tokens (expert-routing.ts); empty for dense models. */
  expertImbalance: (number | undefined)[];
}

export type UpSnapshot = SourceSnapshot & { stats: EngineStats; info: ModelInfo };

export class ScrapeSnapshots {
  private cached: SourceSnapshot[] | undefined;
  private pinned = 0;
  private readonly previous = new Map<EngineBinding, { busy: number; uptime: number }>();
  private readonly routing = new Map<EngineBinding, RoutingWindow>();

  constructor(private readonly bindings: () => readonly EngineBinding[]) {}

  /** The snapshots of this scrape: taken on first use, kept while a scrape is pinned or until the event loop turns
   *  (prom-client calls every family's get() in one synchronous pass, so an unpinned registry.metrics() shares it). */
  read(): SourceSnapshot[] {
    if (!this.cached) {
      this.cached = this.bindings().map((b) => this.take(b));
      if (this.pinned === 0) {
        setImmediate(() => {
          if (this.pinned === 0) this.cached = undefined;
        });
      }
    }
    return this.cached;
  }

  up(): UpSnapshot[] {
    return this.read().filter((s): s is UpSnapshot => s.stats !== undefined && s.info !== undefined);
  }

  /** Run one scrape with its snapshot pinned, fresh at its start. */
  async during<T>(scrape: () => Promise<T>): Promise<T> {
    if (this.pinned === 0) this.cached = undefined;
    this.pinned++;
    try {
      return await scrape();
    } finally {
      if (--this.pinned === 0) this.cached = undefined;
    }
  }

  private take(binding: EngineBinding): SourceSnapshot {
    const labels = { model: binding.modelName, role: binding.role };
    let stats: EngineStats | undefined, info: ModelInfo | undefined;
    try {
      const engine = binding.engine();
      if (engine) {
        stats = engine.stats(); // throws ENGINE_CLOSED after close(): reported as down
        info = engine.info;
      }
    } catch {
      stats = undefined;
    }
    if (!stats || !info) {
      this.previous.delete(binding);
      this.routing.delete(binding);
      return { binding, labels, utilizationRatio: 0, expertImbalance: [] };
    }
    const prev = this.previous.get(binding);
    const now = { busy: stats.busySeconds, uptime: stats.uptimeSeconds };
    this.previous.set(binding, now);
    // A new engine instance restarts its clock: then the interval is its whole life.
    const base = prev && prev.uptime <= now.uptime && prev.busy <= now.busy ? prev : { busy: 0, uptime: 0 };
    const dUptime = now.uptime - base.uptime;
    const ratio = dUptime > 0 ? Math.min(1, Math.max(0, (now.busy - base.busy) / dUptime)) : 0;
    let expertImbalance: (number | undefined)[] = [];
    if (stats.moe) {
      let window = this.routing.get(binding);
      if (!window) this.routing.set(binding, (window = new RoutingWindow()));
      expertImbalance = window.advance(stats.moe.tokensPerExpert);
    } else {
      this.routing.delete(binding);
    }
    return { binding, labels, stats, info, utilizationRatio: ratio, expertImbalance };
  }
}
