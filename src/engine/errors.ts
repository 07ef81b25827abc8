// One error class for everything the engine refuses or fails at. The native addon is handed this class at load
// and throws it from C++ too, so `instanceof EngineError` holds and `code` is stable across the boundary.

export const ENGINE_ERROR_CODES = {
  INVALID_ARGUMENT: 'A request or option the engine cannot honour (the message names the field and why).',
  MODEL_NOT_FOUND: 'The model file does not exist or cannot be opened.',
  MODEL_CORRUPT: 'The model file is truncated, malformed or inconsistent.',
  UNSUPPORTED_ARCHITECTURE: 'The model architecture or tokenizer type is not implemented.',
  UNSUPPORTED_TENSOR_TYPE: 'The model holds a tensor type the engine cannot read.',
  CONTEXT_OVERFLOW: 'The prompt does not fit in the context window.',
  ENGINE_CLOSED: 'The engine was closed.',
  CANCELLED: 'The request was cancelled by its caller.',
  OUT_OF_MEMORY: 'An allocation failed.',
  QUEUE_FULL: 'maxQueueLength requests already wait behind a full batch: the request was refused at once.',
  TIMEOUT: 'The request deadline passed before it finished (refused while waiting, or cut while running).',
  INTERNAL: 'An engine invariant did not hold: a bug.',
} as const;

export type EngineErrorCode = keyof typeof ENGINE_ERROR_CODES;

export class EngineError extends Error {
  readonly code: EngineErrorCode;

  constructor(code: EngineErrorCode, message: string) {
    super(message);
    this.name = 'EngineError';
    this.code = code;
  }
}

export function isEngineError(e: unknown): e is EngineError {
  return e instanceof EngineError;
}
