// The load generator's public face: `tuneloop load`, and the same loop for tests and benchmarks.
export { loadCommand, parseLoadArgs, LOAD_USAGE } from './cli.js';
export { runLoad, driveLoad, type LoadOptions, type WorkloadOptions, type SendOne } from './run.js';
export { runLoadInProcess, type InProcessOptions } from './inprocess.js';
export { buildReport, formatReport, meetsSlo, percentile, summarize, type LoadReport, type LoadConfig, type Distribution } from './report.js';
export { SseParser, streamCompletion, firstModel, apiRoot } from './client.js';
export { poissonArrivals, driveOpenLoop, driveClosedLoop } from './arrivals.js';
export { BUILTIN_PROMPTS, createRng, createWorkload, loadPromptFile, parseOutputLen, sampleOutputLen, type OutputLenDist, type RequestSpec } from './workload.js';
export { DEFAULT_SLO, type RequestRecord, type SloTargets } from './types.js';
export { startLatencyProbe, scrapeMetrics, metricSamples, metricSum, serverRoot, type LatencyProbe, type ProbeSummary } from './probe.js';
export { runOverload, formatOverload, nativeGrowth, type OverloadOptions, type OverloadReport } from './overload.js';
export { runMixedTraffic, MIXED_ROUTES, type MixedEndpoint, type MixedOptions, type MixedRecord, type MixedSummary } from './mixed.js';
export {
  runSoak,
  rssTrend,
  standardSoakEvents,
  checkSoakCounters,
  formatSoak,
  type SoakEvent,
  type SoakOptions,
  type SoakReport,
  type SoakSample,
  type RssTrend,
} from './soak.js';
