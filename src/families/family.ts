/**
 * A model family: everything the engine needs to know about one kind of checkpoint, in one folder
 * (src/families/<family>/), registered with one line in registry.ts. The shape follows transformers.js's
 * `models/<name>/` and onnxruntime-genai's builders: the LLM is shared (graph/decoder.ts); a family brings its
 * config reader and key layouts, its vision graphs, and (as the session grows to need them) its processor,
 * media tokens, position rule and salience.
 */
import type { CheckpointFormat } from '../checkpoint/checkpoint.js';
import type { Obj } from '../checkpoint/config-fields.js';
import type { ModelSpecBase } from '../checkpoint/spec.js';
import type { FamilyGraphBuilder, FamilyGraphKind } from '../graph/build.js';

export interface ModelFamily<S extends ModelSpecBase = ModelSpecBase> {
  /** `spec.family` of the checkpoints it reads. */
  name: S['family'];
  /** The `architectures[0]` values it reads (also listed in CONFIG_UNSUPPORTED errors). */
  architectures: readonly string[];
  /** Whether config.json is this family's (by `architectures`, else `model_type`). */
  claims(config: Obj): boolean;
  /** config.json → spec, and the on-disk key layouts (transformers' current one first). */
  format: CheckpointFormat<S>;
  /** The graphs `graph` builds: the vision tower, and a projector where the family has a separate one. */
  graphs: readonly FamilyGraphKind[];
  graph: FamilyGraphBuilder;
}
