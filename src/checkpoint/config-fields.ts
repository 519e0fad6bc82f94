/**
 * Typed reads of one config.json object: a field's value checked and defaulted, and every error naming the
 * field by its full path (`text_config.rope_scaling.factor`) and the file. config.json's sections
 * (config.ts), their rope parameters (rope.ts) and quantization_config (quantization.ts) all read through it.
 */
import { ConfigError } from '../errors.js';

export type Obj = Record<string, unknown>;

/** Reads typed fields of one config object, defaulting absent ones and naming `prefix.field` in errors. */
export class Fields {
  constructor(
    readonly obj: Obj,
    readonly prefix: string,
    readonly file: string,
  ) {}

  name(field: string): string {
    return this.prefix === '' ? field : `${this.prefix}.${field}`;
  }
  invalid(field: string, what: string): ConfigError {
    const value = JSON.stringify(this.obj[field]);
    return new ConfigError('CONFIG_INVALID', `${this.file}: ${this.name(field)} = ${value} ${what}`, {
      subject: this.name(field),
    });
  }
  unsupported(field: string, value: unknown, supported: readonly string[]): ConfigError {
    return new ConfigError(
      'CONFIG_UNSUPPORTED',
      `${this.file}: ${this.name(field)} = ${JSON.stringify(value)} is not supported; supported: ${supported.join(', ')}`,
      { subject: this.name(field) },
    );
  }
  /** A positive integer; `dflt` when the field is absent (undefined means the field is required). */
  posInt(field: string, dflt?: number): number {
    const v = field in this.obj ? this.obj[field] : dflt;
    if (v === undefined) throw this.invalid(field, 'is missing (required positive integer)');
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw this.invalid(field, 'must be a positive integer');
    return v;
  }
  posNum(field: string, dflt?: number): number {
    const v = field in this.obj ? this.obj[field] : dflt;
    if (v === undefined) throw this.invalid(field, 'is missing (required positive number)');
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw this.invalid(field, 'must be a positive number');
    return v;
  }
  bool(field: string, dflt: boolean): boolean {
    const v = this.obj[field] ?? dflt;
    if (typeof v !== 'boolean') throw this.invalid(field, 'must be true or false');
    return v;
  }
  oneOf<T extends string>(field: string, allowed: readonly T[], dflt: T): T {
    const v = this.obj[field] ?? dflt;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw this.unsupported(field, v, allowed);
    return v as T;
  }
  sub(field: string, dflt: Obj): Fields {
    const v = this.obj[field] ?? dflt;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw this.invalid(field, 'must be an object');
    return new Fields(v as Obj, this.name(field), this.file);
  }
}
