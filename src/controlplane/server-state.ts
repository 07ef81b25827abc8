// The server's live state, shared by the app (readyz, the /v1 draining refusal), every ServingRequest (which counts
// itself in and out) and http-server.ts (the drain waits for `active` to reach 0, then cancels what is in `inflight`).
import type { Generation } from '../engine/generation.js';

/** Live state shared with http-server.ts (draining, in-flight accounting). */
export interface AppState {
  draining: boolean;
  /** Generation requests whose response has not finished. */
  readonly inflight: Set<Generation>;
  /** HTTP generation requests being handled (including those not yet submitted to the engine). */
  readonly active: number;
  /** Resolves the next time `active` drops to 0. */
  onIdle(): Promise<void>;
}

/** The AppState the app hands out; ServingRequest counts itself in and out. */
export class ServerState implements AppState {
  draining = false;
  readonly inflight = new Set<Generation>();
  private count = 0;
  private idleWaiters: (() => void)[] = [];

  get active(): number {
    return this.count;
  }

  begin(): void {
    this.count++;
  }

  end(): void {
    this.count--;
    if (this.count !== 0) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  onIdle(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((res) => this.idleWaiters.push(res));
  }
}
