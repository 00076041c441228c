// The web metric provider: GET a URL templated for each revision, read one number from the JSON answer at a path
// (`$.a.b[0]['c-d']`: keys and indexes; no filters or wildcards, so a path means one value). null or a missing
// path is "no data", never zero.
import { originOf, send, type Credentials } from '../runtime/http.ts';
import type { MetricSpec, MetricValue } from './judge.ts';
import { fillTemplate, type RevisionVars } from './prometheus.ts';

export class WebMetricError extends Error {}

type Segment = string | number;

/** `$.data.items[0]['error-rate']` → ['data', 'items', 0, 'error-rate']; an Error naming the bad part otherwise. */
export function parseJsonPath(path: string): Segment[] {
  let rest = path.trim();
  if (rest.startsWith('$')) rest = rest.slice(1);
  const out: Segment[] = [];
  const token = /^(?:\.([A-Za-z_][\w-]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]|\["((?:[^"\\]|\\.)*)"\])/;
  // A bare first key (`data.rate`) reads as `$.data.rate`.
  if (/^[A-Za-z_]/.test(rest)) rest = `.${rest}`;
  while (rest.length > 0) {
    const m = token.exec(rest);
    if (!m) throw new WebMetricError(`jsonPath ${JSON.stringify(path)}: cannot read ${JSON.stringify(rest)} (use .key, [index] or ['key'])`);
    out.push(m[1] ?? (m[2] !== undefined ? Number(m[2]) : (m[3] ?? m[4] ?? '').replace(/\\(.)/g, '$1')));
    rest = rest.slice(m[0].length);
  }
  return out;
}

/** The number at the path: undefined when there is nothing there (or null); an Error when it is not a number. */
export function valueAt(doc: unknown, path: string): number | undefined {
  let v: unknown = doc;
  for (const seg of parseJsonPath(path)) {
    if (v === null || v === undefined) return undefined;
    if (typeof seg === 'number') v = Array.isArray(v) ? v[seg] : undefined;
    else v = typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>)[seg] : undefined;
  }
  if (v === null || v === undefined) return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n)) throw new WebMetricError(`the value at ${path} is ${JSON.stringify(v).slice(0, 80)}, not a number`);
  return n;
}

export async function measureWeb(spec: NonNullable<MetricSpec['web']>, vars: RevisionVars, credentials: Credentials | undefined): Promise<MetricValue | undefined> {
  const url = fillTemplate(spec.url, vars, encodeURIComponent);
  const origin = originOf(url);
  let res;
  try {
    res = await send('GET', url, { credentials, timeoutMs: (spec.timeoutSeconds ?? 10) * 1000, headers: { accept: 'application/json' }, maxBytes: 1 << 20 });
  } catch (err) {
    throw new WebMetricError(`${origin} cannot be reached: ${(err as Error).message}`);
  }
  if (res.status < 200 || res.status >= 300) throw new WebMetricError(`${origin} answered ${res.status}`);
  let doc: unknown;
  try {
    doc = JSON.parse(res.body);
  } catch {
    throw new WebMetricError(`${origin} answered with something other than JSON`);
  }
  const v = valueAt(doc, spec.jsonPath);
  return v === undefined ? undefined : { kind: 'value', value: v };
}
