// The load generator's public face: `tuneloop load`, and the same loop for tests and benchmarks.
export { loadCommand, parseLoadArgs, LOAD_USAGE } from './cli.js';
export { runLoad, driveLoad, type LoadOptions, type WorkloadOptions, type SendOne } from './run.js';
export { runLoadInProcess, type InProcessOptions } from './inprocess.js';
export { buildReport, formatReport, meetsSlo, percentile, summarize, type LoadReport, type LoadConfig, type Distribution } from './report.js';
export { SseParser, streamCompletion, firstModel, apiRoot } from './client.js';
export { poissonArrivals, driveOpenLoop, driveClosedLoop } from './arrivals.js';
export { BUILTIN_PROMPTS, createRng, createWorkload, loadPromptFile, parseOutputLen, sampleOutputLen, type OutputLenDist, type RequestSpec } from './workload.js';
export { DEFAULT_SLO, type RequestRecord, type SloTargets } from './types.js';
