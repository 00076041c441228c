// Resource quantities in the API server's normal form (k8s.io/apimachinery resource.Quantity): what a
// Deployment reads back after `cpu: "0.5"` is `500m`, after `1024Mi` is `1Gi`, after `memory: 1000` is `1k`.
// Comparing desired children with live ones in this form is what keeps a converged resync at zero writes.
//
// The rules, as apimachinery applies them: the value is exact (big integers here), rounded up to nano units (to
// milli units in a core/v1 ResourceList, whose defaulting rounds every value up to 1m);
// a binary-suffixed value (Ki, Mi, …) stays binary when it is a whole number of at least 1024, with the
// largest suffix that divides it, and is written in decimal otherwise; a decimal value is written as an integer
// mantissa whose exponent is a multiple of 3 (n, u, m, "", k, M, G, T, P, E), or with `e<exp>` when it was
// written that way.

const PATTERN = /^([+-]?)(\d*)(?:\.(\d*))?(?:([eE][+-]?\d+)|([numkMGTPE]|[KMGTPE]i))?$/;

const DECIMAL_SUFFIXES: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const SUFFIX_OF_EXPONENT = new Map(Object.entries(DECIMAL_SUFFIXES).map(([s, e]) => [e, s]));
const BINARY_SUFFIXES = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

const RESOURCE_LIST_SCALE = -3;

type Format = 'DecimalSI' | 'BinarySI' | 'DecimalExponent';

/**
 * The API server's rendering of a quantity; undefined when it is not a quantity at all. `minScale` is the power
 * of ten precision is rounded up to: -9 for a plain quantity, -3 in a ResourceList.
 */
export function canonicalQuantity(input: string | number, minScale = -9): string | undefined {
  // The same few spellings recur in every reconcile: remember them (bounded; the result is a pure function).
  const key = `${typeof input}:${input}:${minScale}`;
  if (MEMO.has(key)) return MEMO.get(key);
  const result = canonicalize(input, minScale);
  if (MEMO.size >= 4096) MEMO.clear();
  MEMO.set(key, result);
  return result;
}

const MEMO = new Map<string, string | undefined>();

function canonicalize(input: string | number, minScale: number): string | undefined {
  const text = typeof input === 'number' ? numberText(input) : input.trim();
  const m = PATTERN.exec(text);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) return undefined;
  const [, sign = '', whole = '', fraction = '', exp, suffix = ''] = m;
  let mantissa = BigInt(`${whole || '0'}${fraction}`) * (sign === '-' ? -1n : 1n);
  let scale = -fraction.length;
  let format: Format = 'DecimalSI';
  if (exp !== undefined) {
    format = 'DecimalExponent';
    scale += Number(exp.slice(1));
  } else if (suffix.endsWith('i')) {
    format = 'BinarySI';
    mantissa *= 1024n ** BigInt(BINARY_SUFFIXES.indexOf(suffix));
  } else {
    scale += DECIMAL_SUFFIXES[suffix] ?? 0;
  }
  // Precision below the smallest unit is rounded up (away from zero).
  if (scale < minScale) {
    const div = 10n ** BigInt(minScale - scale);
    const q = mantissa / div;
    mantissa = q * div === mantissa ? q : q + (mantissa > 0n ? 1n : -1n);
    scale = minScale;
  }
  if (mantissa === 0n) return '0';

  if (format === 'BinarySI') {
    const abs = mantissa < 0n ? -mantissa : mantissa;
    const whole1024 = scale >= 0 ? abs * 10n ** BigInt(scale) : abs % 10n ** BigInt(-scale) === 0n ? abs / 10n ** BigInt(-scale) : undefined;
    if (whole1024 !== undefined && whole1024 >= 1024n) {
      let n = whole1024;
      let k = 0;
      while (k < BINARY_SUFFIXES.length - 1 && n % 1024n === 0n) {
        n /= 1024n;
        k++;
      }
      return `${mantissa < 0n ? '-' : ''}${n}${BINARY_SUFFIXES[k]}`;
    }
    format = 'DecimalSI'; // a small or fractional binary value: shown exactly, in decimal
  }
  while (mantissa % 10n === 0n) {
    mantissa /= 10n;
    scale++;
  }
  const r = ((scale % 3) + 3) % 3; // bring the exponent down to a multiple of 3
  mantissa *= 10n ** BigInt(r);
  scale -= r;
  if (format === 'DecimalSI') {
    const s = SUFFIX_OF_EXPONENT.get(scale);
    if (s !== undefined) return `${mantissa}${s}`;
  }
  // An exponent keeps the letter it was written with (1E6 stays 1E6).
  return scale === 0 ? `${mantissa}` : `${mantissa}${exp?.[0] ?? 'e'}${scale}`;
}

function numberText(n: number): string {
  // JSON numbers reach the API server as their text; avoid JavaScript's exponent notation for large or small ones.
  if (Number.isInteger(n)) return BigInt(n).toString();
  return n.toString().includes('e') ? n.toFixed(20).replace(/0+$/, '') : n.toString();
}

/**
 * A ResourceRequirements-shaped object with every quantity as the API server stores it in a container's
 * ResourceList (rounded up to milli units); unparseable ones are kept as given for the server to refuse.
 */
export function canonicalResources<T extends { requests?: Record<string, string | number> | undefined; limits?: Record<string, string | number> | undefined }>(r: T): T {
  const norm = (list: Record<string, string | number> | undefined): Record<string, string> | undefined =>
    list && Object.fromEntries(Object.entries(list).map(([k, v]) => [k, canonicalQuantity(v, RESOURCE_LIST_SCALE) ?? String(v)]));
  const out: Record<string, unknown> = { ...r };
  if (r.requests) out.requests = norm(r.requests);
  if (r.limits) out.limits = norm(r.limits);
  return out as T;
}
