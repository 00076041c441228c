// The Mann-Whitney U (Wilcoxon rank-sum) test, for latency-like measurements where the question is "does the
// canary tend to be slower than stable", with an effect size (the probability that a canary observation exceeds
// a stable one, ties counting half: Vargha-Delaney A) and the Hodges-Lehmann location shift. The p-value is the
// normal approximation with tie correction and optional continuity correction, as SciPy's `mannwhitneyu(...,
// method='asymptotic')` and R's `wilcox.test(exact=FALSE)` compute it; exact for small samples without ties.
import { normalCdf } from './normal.ts';

export type Alternative = 'two-sided' | 'greater' | 'less';

export interface MannWhitneyResult {
  /** U of x: pairs (x_i, y_j) with x_i > y_j, ties counting half. */
  u: number;
  pValue: number;
  /** U / (n_x · n_y): the probability that an x exceeds a y (ties half). 0.5 means no tendency. */
  effect: number;
}

/** Ranks of `values` (1-based, ties get their average rank), and the tie-correction term Σ(t³ − t). */
function rank(values: { v: number; w: number }[]): { ranks: number[]; tieTerm: number } {
  const order = values.map((x, i) => ({ ...x, i })).sort((a, b) => a.v - b.v);
  const ranks = new Array<number>(values.length);
  let tieTerm = 0;
  let pos = 0; // weighted position: observations carry a weight (histogram bucket counts)
  for (let i = 0; i < order.length; ) {
    let j = i;
    let weight = 0;
    while (j < order.length && order[j]?.v === order[i]?.v) weight += order[j++]?.w ?? 0;
    const avg = pos + (weight + 1) / 2;
    for (let k = i; k < j; k++) ranks[order[k]?.i ?? 0] = avg;
    tieTerm += weight ** 3 - weight;
    pos += weight;
    i = j;
  }
  return { ranks, tieTerm };
}

/** The Mann-Whitney test of weighted observations (value, count): plain samples have count 1 each. */
export function mannWhitneyWeighted(x: { v: number; w: number }[], y: { v: number; w: number }[], opts: { alternative?: Alternative; continuity?: boolean } = {}): MannWhitneyResult {
  const alternative = opts.alternative ?? 'two-sided';
  const continuity = opts.continuity ?? true;
  const nx = x.reduce((s, o) => s + o.w, 0);
  const ny = y.reduce((s, o) => s + o.w, 0);
  if (nx === 0 || ny === 0) return { u: NaN, pValue: NaN, effect: NaN };
  const { ranks, tieTerm } = rank([...x, ...y]);
  let rx = 0;
  for (let i = 0; i < x.length; i++) rx += (ranks[i] ?? 0) * (x[i]?.w ?? 0);
  const u = rx - (nx * (nx + 1)) / 2;
  const n = nx + ny;
  const mu = (nx * ny) / 2;
  const sigma = Math.sqrt(((nx * ny) / 12) * (n + 1 - tieTerm / (n * (n - 1))));
  const effect = u / (nx * ny);
  if (sigma === 0) return { u, pValue: 1, effect };
  const cc = continuity ? 0.5 : 0;
  let p: number;
  if (alternative === 'greater') p = 1 - normalCdf((u - mu - cc) / sigma);
  else if (alternative === 'less') p = normalCdf((u - mu + cc) / sigma);
  else p = Math.min(1, 2 * (1 - normalCdf((Math.abs(u - mu) - cc) / sigma)));
  return { u, pValue: Math.max(0, Math.min(1, p)), effect };
}

export function mannWhitney(x: number[], y: number[], opts: { alternative?: Alternative; continuity?: boolean } = {}): MannWhitneyResult {
  return mannWhitneyWeighted(x.map((v) => ({ v, w: 1 })), y.map((v) => ({ v, w: 1 })), opts);
}

/** The exact two-sided p-value of U for samples without ties (small samples: n_x · n_y ≤ 10,000). */
export function mannWhitneyExactP(u: number, nx: number, ny: number): number {
  // Counts of rank arrangements by U: the number of ways c(i, j, u) to reach U = u with i x's and j y's.
  let prev: number[][] = Array.from({ length: ny + 1 }, () => [1]);
  for (let i = 1; i <= nx; i++) {
    const cur: number[][] = [];
    for (let j = 0; j <= ny; j++) {
      const size = i * j + 1;
      const row = new Array<number>(size).fill(0);
      // The largest value is an x (adds j to U) or a y.
      const fromX = prev[j] ?? [];
      for (let k = 0; k < fromX.length; k++) row[k + j] = (row[k + j] ?? 0) + (fromX[k] ?? 0);
      if (j > 0) {
        const fromY = cur[j - 1] ?? [];
        for (let k = 0; k < fromY.length; k++) row[k] = (row[k] ?? 0) + (fromY[k] ?? 0);
      }
      cur.push(row);
    }
    prev = cur;
  }
  const dist = prev[ny] ?? [];
  const total = dist.reduce((s, c) => s + c, 0);
  const mean = (nx * ny) / 2;
  const extreme = Math.abs(u - mean);
  let tail = 0;
  for (let k = 0; k < dist.length; k++) if (Math.abs(k - mean) >= extreme - 1e-9) tail += dist[k] ?? 0;
  return Math.min(1, tail / total);
}

/** The Hodges-Lehmann estimate of the shift x − y: the median of all pairwise differences. */
export function hodgesLehmann(x: number[], y: number[]): number {
  const d: number[] = [];
  for (const a of x) for (const b of y) d.push(a - b);
  d.sort((a, b) => a - b);
  const m = d.length / 2;
  return d.length % 2 ? (d[Math.floor(m)] ?? NaN) : ((d[m - 1] ?? NaN) + (d[m] ?? NaN)) / 2;
}
