export { Engine } from './engine.js';
export { Generation } from './generation.js';
export { VocabTokenizer, type VocabTokenizerInfo } from './vocab-tokenizer.js';
export { EngineError, ENGINE_ERROR_CODES, isEngineError, type EngineErrorCode } from './errors.js';
export { native } from './native.js';
export * from './types.js';
export * from './knobs.js';
export { POOLINGS, l2Normalize, modelPooling, poolHidden, type Pooling } from './pooling.js';
