// Does the live object already say everything the desired configuration says? Then applying it again is a
// no-op the API server would accept, and skipping it keeps a full resync at zero writes.
import type { KubeObject } from '../kube/resources.ts';

/**
 * True when every field of `desired` is present in `live` with an equal value. Objects may have more fields live
 * (defaults, other managers); arrays must match element by element, since a list is owned whole or by key.
 */
export function isSubset(desired: unknown, live: unknown): boolean {
  if (desired === live) return true;
  if (Array.isArray(desired)) {
    return Array.isArray(live) && desired.length === live.length && desired.every((d, i) => isSubset(d, live[i]));
  }
  if (desired !== null && typeof desired === 'object') {
    if (live === null || typeof live !== 'object' || Array.isArray(live)) return false;
    return Object.entries(desired as Record<string, unknown>).every(([k, v]) => v === undefined || isSubset(v, (live as Record<string, unknown>)[k]));
  }
  if (typeof desired === 'number' && typeof live === 'string') return String(desired) === live;
  return false;
}

/** Deep equality of JSON values, ignoring key order and undefined fields. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  return isSubset(a, b) && isSubset(b, a);
}

/**
 * A canonical JSON rendering: keys in UTF-16 code-unit order (never a locale's collation, which differs between
 * machines), undefined fields left out. The same value always renders to the same text.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i ? ',' : '') + canonicalJson(value[i]);
    return `${out}]`;
  }
  // Array.prototype.sort without a comparator orders by UTF-16 code units: the same on every machine and locale.
  const o = value as Record<string, unknown>;
  let out = '{';
  let first = true;
  for (const k of Object.keys(o).sort()) {
    const v = o[k];
    if (v === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(k)}:${canonicalJson(v)}`;
    first = false;
  }
  return `${out}}`;
}

/**
 * A change of the status alone is Slipway's own write: reconciling it again would plan the same thing, and when
 * the write records a failure whose message varies, it would turn into a write-event-retry loop that bypasses
 * the backoff. Spec changes move the generation; metadata that matters (labels, annotations, deletion) is
 * compared directly.
 */
export function onlyStatusChanged(old: KubeObject, now: KubeObject): boolean {
  const a = old.metadata;
  const b = now.metadata;
  return (
    a.generation === b.generation &&
    a.deletionTimestamp === b.deletionTimestamp &&
    jsonEqual(a.labels ?? {}, b.labels ?? {}) &&
    jsonEqual(a.annotations ?? {}, b.annotations ?? {}) &&
    jsonEqual(a.finalizers ?? [], b.finalizers ?? [])
  );
}
