// The GitOps write-back's edit of a manifest: in a YAML file of one or more documents, the ModelDeployment of a
// name gets the model (and image) that now runs; everything else — other documents, comments, key order,
// quoting — stays as it was written. Pure.
import { parseAllDocuments, isMap } from 'yaml';

export interface ManifestEdit {
  /** The file with the edit; equal to the input when the manifest already says what runs. */
  text: string;
  changed: boolean;
  /** The fields set, as `spec.model.version: 8 → 7`. */
  edits: string[];
}

export class ManifestError extends Error {}

/**
 * Sets `spec.model.<key>` for every key of `model`, and `spec.image` when `image` is given (or, with `field`, only
 * that field, to the model version), in the document of
 * kind ModelDeployment named `name` (and, if the document says, in `namespace`). A file without that document,
 * or that is not YAML, is a ManifestError naming the path.
 */
export function rewriteManifest(text: string, path: string, target: { name: string; namespace: string }, model: Record<string, unknown>, image?: string, field?: string): ManifestEdit {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new ManifestError(`${path} is not a YAML stream`);
  const bad = docs.find((d) => d.errors.length > 0);
  if (bad) throw new ManifestError(`${path} is not valid YAML: ${bad.errors[0]?.message ?? ''}`);
  const doc = docs.find((d) => {
    const js = d.toJS() as { kind?: string; metadata?: { name?: string; namespace?: string } } | null;
    return js?.kind === 'ModelDeployment' && js.metadata?.name === target.name && (js.metadata.namespace === undefined || js.metadata.namespace === target.namespace);
  });
  if (!doc) throw new ManifestError(`${path} has no ModelDeployment ${target.name}`);
  const edits: string[] = [];
  const set = (keys: string[], value: unknown): void => {
    const was = doc.getIn(keys);
    if (JSON.stringify(was) === JSON.stringify(value)) return;
    edits.push(`${keys.join('.')}: ${String(was)} → ${String(value)}`);
    doc.setIn(keys, value);
  };
  if (field) {
    // One field only (a patch that holds just the version): it must be there already.
    const keys = field.split('.');
    if (doc.getIn(keys) === undefined) throw new ManifestError(`${path}: ModelDeployment ${target.name} has no ${field}`);
    set(keys, model.version);
  } else {
    const spec = doc.get('spec');
    if (!isMap(spec)) throw new ManifestError(`${path}: ModelDeployment ${target.name} has no spec`);
    for (const [k, v] of Object.entries(model)) if (v !== undefined) set(['spec', 'model', k], v);
    if (image !== undefined && doc.getIn(['spec', 'image']) !== undefined) set(['spec', 'image'], image);
  }
  if (edits.length === 0) return { text, changed: false, edits };
  return { text: docs.map((d) => d.toString({ flowCollectionPadding: false, lineWidth: 0 })).join(''), changed: true, edits };
}
