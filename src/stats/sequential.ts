// An anytime-valid comparison of two rates (errors per request of the canary and of the stable revision): an
// asymptotic confidence sequence for the difference of proportions (Waudby-Smith et al. 2023, arXiv:2103.06476,
// eq. 155; the form GrowthBook documents for its sequential tests). Unlike a fixed-horizon interval, it may be
// looked at after every new measurement without inflating the false-alarm rate: the chance that the sequence
// ever excludes the true difference is at most alpha, however often it is checked. The price is width (about
// 1.6× a fixed-horizon interval around n = N*).

export interface RateSample {
  /** Events of interest (e.g. errors). */
  events: number;
  /** Trials (e.g. requests). */
  trials: number;
}

/** The tuning constant: the sample size around which the sequence is tightest (GrowthBook's default). */
export const DEFAULT_N_STAR = 5000;

/** ρ for a level alpha and a tuning sample size N*. */
export function csRho(alpha: number, nStar = DEFAULT_N_STAR): number {
  const l = -2 * Math.log(alpha);
  return Math.sqrt((l + Math.log(l + 1)) / nStar);
}

/** The half-width of the confidence sequence for an effect whose standard error is `se`, after `n` trials in all. */
export function csHalfWidth(se: number, n: number, alpha: number, nStar = DEFAULT_N_STAR): number {
  const rho = csRho(alpha, nStar);
  const nr2 = n * rho * rho + 1;
  const s2 = n * se * se;
  return Math.sqrt(s2) * Math.sqrt((2 * nr2 * Math.log(Math.sqrt(nr2) / alpha)) / (n * rho) ** 2);
}

/** The always-valid p-value of an effect with standard error `se` after `n` trials in all. */
export function csPValue(effect: number, se: number, n: number, alpha: number, nStar = DEFAULT_N_STAR): number {
  if (se === 0) return effect === 0 ? 1 : 0;
  const rho = csRho(alpha, nStar);
  const nr2 = n * rho * rho + 1;
  const st2 = (effect * effect * n) / (se * se);
  const e = Math.exp((rho * rho * st2) / (2 * nr2)) / Math.sqrt(nr2);
  return Math.min(1, 1 / e);
}

export interface RateComparison {
  canaryRate: number;
  stableRate: number;
  /** canary − stable. */
  difference: number;
  /** The confidence sequence of the difference at this look. */
  low: number;
  high: number;
  pValue: number;
}

/**
 * Compares the canary's rate with the stable revision's, from their cumulative counts. Proportions are
 * continuity-adjusted ((x + 0.5) / (n + 1)) so that a run of zero errors still has a standard error.
 */
export function compareRates(canary: RateSample, stable: RateSample, alpha: number, nStar = DEFAULT_N_STAR): RateComparison {
  const adj = (s: RateSample): number => (s.events + 0.5) / (s.trials + 1);
  const pc = adj(canary);
  const ps = adj(stable);
  const se = Math.sqrt((pc * (1 - pc)) / Math.max(1, canary.trials) + (ps * (1 - ps)) / Math.max(1, stable.trials));
  const n = canary.trials + stable.trials;
  const hw = csHalfWidth(se, n, alpha, nStar);
  const difference = pc - ps;
  return { canaryRate: pc, stableRate: ps, difference, low: difference - hw, high: difference + hw, pValue: csPValue(difference, se, n, alpha, nStar) };
}
