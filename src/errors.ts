/**
 * Typed errors, raised where bad data enters. Every error names what is wrong (a file, a field, a value)
 * and, where it can, how to fix it. Callers can branch on `code` without parsing messages.
 */
export type ErrorCode =
  | 'CHECKPOINT_NOT_FOUND'
  | 'CHECKPOINT_CORRUPT'
  | 'TENSOR_MISSING'
  | 'TENSOR_SHAPE'
  | 'TENSOR_DTYPE'
  | 'CONFIG_UNSUPPORTED'
  | 'CONFIG_INVALID'
  | 'TOKENIZER_INVALID'
  | 'IMAGE_UNREADABLE'
  | 'IMAGE_COUNT_MISMATCH'
  | 'IMAGE_SIZE'
  | 'VIDEO_UNREADABLE'
  | 'VIDEO_TIMEOUT'
  | 'DEPENDENCY_MISSING'
  | 'MEMORY_LIMIT'
  | 'PROMPT_EMPTY'
  | 'OPTION_INVALID'
  | 'WORKLOAD_INVALID'
  | 'PROVIDER_UNAVAILABLE'
  | 'GRAPH_BUILD'
  | 'RUNTIME'
  | 'CONTEXT_OVERFLOW'
  | 'NON_FINITE';

export class SparseVilaError extends Error {
  readonly code: ErrorCode;
  /** The file, field or value the error is about, when there is one. */
  readonly subject?: string;

  constructor(code: ErrorCode, message: string, options: { subject?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SparseVilaError';
    this.code = code;
    this.subject = options.subject;
  }
}

export class CheckpointError extends SparseVilaError {
  override readonly name = 'CheckpointError';
}
export class ConfigError extends SparseVilaError {
  override readonly name = 'ConfigError';
}
export class InputError extends SparseVilaError {
  override readonly name = 'InputError';
}
export class RuntimeError extends SparseVilaError {
  override readonly name = 'RuntimeError';
}
