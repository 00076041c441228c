// The content hash of a built environment: everything that makes its image, in a canonical form, so that specs
// that mean the same thing (packages in another order, other spellings of a name, whitespace, duplicates) hash
// the same and reuse one image, and any change that could change the image gives a new hash and a new build.
import { createHash } from 'node:crypto';
import type { ProjectEnvironment } from '../api/projectenvironment.ts';

/**
 * The layout version of what the builder writes (image/environment-builder/build.py's FORMAT): bumped when a
 * builder would lay the same packages out differently, so that no image of an older layout is taken for a new one.
 */
export const BUILD_FORMAT = '1';

/** PEP 503: the name pip and the index compare. */
export const canonicalName = (name: string): string => name.replace(/[-_.]+/g, '-').toLowerCase();

/**
 * A PEP 508 requirement of the index (the CRD's pattern), canonical: the name normalized, extras normalized and
 * sorted, specifiers without spaces and sorted (their order means nothing), the marker's whitespace collapsed.
 */
export function canonicalRequirement(req: string): string {
  const [head = '', ...markerParts] = req.split(';');
  const marker = markerParts.join(';').trim().replace(/\s+/g, ' ');
  const m = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*(.*)$/.exec(head);
  if (!m) throw new Error(`not a requirement: ${req}`);
  const name = canonicalName(m[1] ?? '');
  const extras = [...new Set((m[2] ?? '').split(',').map((e) => canonicalName(e.trim())).filter(Boolean))].sort();
  const specifiers = [...new Set((m[3] ?? '').split(',').map((s) => s.replace(/\s+/g, '')).filter(Boolean))].sort();
  return `${name}${extras.length ? `[${extras.join(',')}]` : ''}${specifiers.join(',')}${marker ? `; ${marker}` : ''}`;
}

export interface BuildInputs {
  format: string;
  baseImage: string;
  repository: string;
  pip: string[];
  /** Debian packages, and R packages as Debian names them (r-cran-<lowercase name>), sorted. */
  apt: string[];
  r: string[];
}

/** The canonical inputs of a built environment's spec (undefined for a prebuilt one). */
export function buildInputs(spec: ProjectEnvironment['spec']): BuildInputs | undefined {
  if (!spec.baseImage || !spec.build) return undefined;
  return {
    format: BUILD_FORMAT,
    baseImage: spec.baseImage,
    repository: spec.build.repository,
    pip: [...new Set((spec.packages?.pip ?? []).map(canonicalRequirement))].sort(),
    apt: [...new Set(spec.packages?.apt ?? [])].sort(),
    r: [...new Set((spec.packages?.r ?? []).map((n) => n.toLowerCase()))].sort(),
  };
}

/** sha256 of the canonical inputs, 64 hex digits: the image's tag in the repository and its name in status. */
export function contentHash(inputs: BuildInputs): string {
  // Keys in a fixed order; arrays already canonical.
  const text = JSON.stringify({ format: inputs.format, baseImage: inputs.baseImage, repository: inputs.repository, pip: inputs.pip, ...(inputs.apt.length ? { apt: inputs.apt } : {}), ...(inputs.r.length ? { r: inputs.r } : {}) });
  return createHash('sha256').update(text).digest('hex');
}
