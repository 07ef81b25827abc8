// Child process for the kill -9 test in store.test.ts: writes to the store in a loop and prints one line per write
// *after* the store method returned (an acknowledgement). The parent SIGKILLs it mid-loop and checks every
// acknowledged write survived. fs.writeSync so a line is out of the process before the next write starts.
// The parent imports the fixtures below to know what each iteration wrote; the loop runs only as the entry point.
import { writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { TunerStore, type NewProposal } from '../../src/tuner/store.js';
import type { Actor, LiveSettings } from '../../src/tuner/types.js';

export const CRASH_ACTOR: Actor = { name: 'crash-child', role: 'system' };

/** What iteration i commits: every field derived from i, so a torn write could not pass for a whole one. */
export function crashSettings(i: number): LiveSettings {
  return {
    scheduler: { maxBatchSize: i, maxBatchTokens: 512 + i, maxQueueDelayMs: i % 7, queueGrowThreshold: 32 + i, maxQueueLength: 256 + i },
    layout: { weights: 'f32', kvDtype: 'f32', tpDegree: 1, threadsPerRank: 1 + (i % 4) },
  };
}

export function crashProposal(baseVersion: number): NewProposal {
  return {
    candidate: {
      change: { scheduler: { maxBatchSize: baseVersion + 1 } },
      temperature: 'hot',
      addresses: 'queueing',
      rationale: 'crash test',
      predicted: { goodputTokensPerS: 2, baselineGoodputTokensPerS: 1, interTokenS: 0.01, meetsSlo: true },
    },
    baseVersion,
    target: crashSettings(baseVersion + 1),
    needsApproval: false,
    findingId: null,
    expiresMs: 0,
  };
}

function loop(path: string): never {
  const store = TunerStore.open(path);
  writeSync(1, 'ready\n');
  for (let i = 1; ; i++) {
    const v = store.commitSettings(crashSettings(i), 'tuner', CRASH_ACTOR.name, null, `iteration ${i}`);
    writeSync(1, `settings ${v.version} ${i}\n`);
    const p = store.createProposal(crashProposal(v.version), CRASH_ACTOR);
    writeSync(1, `proposed ${p.id}\n`);
    store.transition(p.id, 'proposed', 'verifying', CRASH_ACTOR, { comment: `iteration ${i}` });
    writeSync(1, `verifying ${p.id}\n`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) loop(process.argv[2]!);
