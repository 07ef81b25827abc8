// Shapes shared by the client, the in-process driver and the report.

/** What happened to one request, as seen by the client. Times are seconds. */
export interface RequestRecord {
  index: number;
  /** When it was sent, from the run's start. */
  startS: number;
  ok: boolean;
  /** Why it failed: `http_<status>`, `network`, `aborted` (cut at the run's end), `stream_error` (an error object
   *  inside the stream), `protocol` (unparsable stream or no [DONE]), or `engine_<CODE>` in process. */
  errorKind?: string;
  errorMessage?: string;
  /** Send to first non-empty text chunk. Absent when no text arrived. */
  ttftS?: number;
  /** Gaps between consecutive non-empty text chunks (one chunk usually carries one token). */
  itlS: number[];
  /** Send to end of stream (or to the failure). */
  e2eS: number;
  /** From the usage chunk when the server sends one, else the number of text chunks. */
  completionTokens: number;
  promptTokens?: number;
  /** The Retry-After header of a refusal (429/503), seconds; absent when the answer had none. */
  retryAfterS?: number;
}

/** Per-request SLO targets; a request is "good" when it meets all three. Names follow the tuner's SLO config. */
export interface SloTargets {
  /** Time to first token, seconds. */
  ttftP99Seconds: number;
  /** The request's own p99 inter-token gap (its max gap when it has fewer than 100 gaps), seconds. */
  interTokenP99Seconds: number;
  /** End to end, seconds. */
  e2eP99Seconds: number;
}

export const DEFAULT_SLO: SloTargets = { ttftP99Seconds: 1.0, interTokenP99Seconds: 0.25, e2eP99Seconds: 10 };
