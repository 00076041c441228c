// The judge's decision speed and false alarms, by simulation of the traffic the reference scenario describes
// (canary at 10 requests/s, stable at 190/s, errors drawn at random, seeded) through Slipway's own analysis
// state machine and judge (src/analysis: what the planner calls), with the peers' documented rules beside it on
// the same draws. What this measures is the decision: the real controller then writes the route in the same
// reconcile (see bench:rollout for that part).
//   npm run bench:judge -- --trials 400
import { parseArgs } from 'node:util';
import { modelDeploymentSpec } from '../src/api/modeldeployment.ts';
import { advanceAnalysis, type AnalysisSpec, type AnalysisStatus } from '../src/analysis/analysis.ts';
import { seededRandom } from '../src/stats/random.ts';
import { percentile } from './support.ts';

const { values } = parseArgs({ options: { trials: { type: 'string', default: '400' }, interval: { type: 'string', default: '10' }, seed: { type: 'string', default: '1' } } });
const TRIALS = Number(values.trials);
const INTERVAL = Number(values.interval);
const HORIZON = 1800; // 30 minutes
const CANARY_RPS = 10;
const STABLE_RPS = 190;

const random = seededRandom(Number(values.seed));
/** Binomial draw: the normal approximation above 50 expected events, exact (inversion) below. */
function binomial(n: number, p: number): number {
  const mean = n * p;
  if (mean > 50) {
    const u = Math.max(1e-12, random());
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
    return Math.max(0, Math.min(n, Math.round(mean + z * Math.sqrt(mean * (1 - p)))));
  }
  let k = 0;
  let q = Math.pow(1 - p, n);
  let cdf = q;
  const u = random();
  while (u > cdf && k < n) {
    q *= ((n - k) / (k + 1)) * (p / (1 - p));
    cdf += q;
    k++;
  }
  return k;
}

const spec: AnalysisSpec = modelDeploymentSpec.parse({
  model: { name: 'm', version: '1', uri: 's3://m/1/', format: 'sklearn' },
  image: 'x',
  rollout: { analysis: { interval: `${INTERVAL}s`, count: HORIZON / INTERVAL + 1, metrics: [{ name: 'errors', preset: 'mlserver-error-rate', compare: { maxIncrease: '0%' } }] } },
}).rollout?.analysis as AnalysisSpec;

/** Slipway: seconds until the analysis fails (undefined if it does not within the horizon). */
function slipway(canaryRate: number): number | undefined {
  const t0 = new Date('2026-11-26T12:00:00Z');
  const ctx = { revision: 'c', step: 1, stepStartedAt: t0.toISOString().replace('.000', '') };
  let a: AnalysisStatus | undefined;
  const canary = { events: 0, trials: 0 };
  const stable = { events: 0, trials: 0 };
  for (let s = INTERVAL; s <= HORIZON; s += INTERVAL) {
    canary.trials += CANARY_RPS * INTERVAL;
    canary.events += binomial(CANARY_RPS * INTERVAL, canaryRate);
    stable.trials += STABLE_RPS * INTERVAL;
    stable.events += binomial(STABLE_RPS * INTERVAL, 0.01);
    const at = new Date(t0.getTime() + s * 1000);
    a = advanceAnalysis(spec, a, ctx, false, { at, metrics: [{ name: 'errors', canary: { kind: 'counts', ...canary }, stable: { kind: 'counts', ...stable } }] }, at);
    if (a.verdict === 'Failed') return s;
  }
  return undefined;
}

/** The peers' threshold: at most 2% errors (success ≥ 98%), twice the healthy rate, as one would set it here. */
const PEER_MAX_ERRORS = 0.02;

/** Flagger: every `interval` s, the success rate over that window against the threshold; rollback after `threshold` failed checks. */
function flagger(canaryRate: number, threshold: number, interval = 60): number | undefined {
  let failed = 0;
  for (let s = interval; s <= HORIZON; s += interval) {
    const n = CANARY_RPS * interval;
    if (binomial(n, canaryRate) / n > PEER_MAX_ERRORS) failed++;
    if (failed >= threshold) return s;
  }
  return undefined;
}

/** Argo Rollouts' documented example: every 5 min, failureLimit 3 (the 4th failed measurement fails the run). */
function argo(canaryRate: number): number | undefined {
  let failed = 0;
  for (let s = 300; s <= HORIZON; s += 300) {
    const n = CANARY_RPS * 300;
    if (binomial(n, canaryRate) / n > PEER_MAX_ERRORS) failed++;
    if (failed > 3) return s;
  }
  return undefined;
}

function summarise(name: string, run: (rate: number) => number | undefined): string {
  const times: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const t = run(0.05);
    if (t !== undefined) times.push(t);
  }
  times.sort((a, b) => a - b);
  let falseRollbacks = 0;
  for (let i = 0; i < TRIALS; i++) if (run(0.01) !== undefined) falseRollbacks++;
  const med = times.length ? `${percentile(times, 50)} s` : '-';
  const p95 = times.length ? `${percentile(times, 95)} s` : '-';
  return `${name.padEnd(58)} ${med.padStart(8)} ${p95.padStart(8)} ${`${((100 * times.length) / TRIALS).toFixed(0)}%`.padStart(9)} ${`${((100 * falseRollbacks) / TRIALS).toFixed(1)}%`.padStart(16)}`;
}

console.log(`canary ${CANARY_RPS} req/s, stable ${STABLE_RPS} req/s, stable error rate 1%; ${TRIALS} trials per cell, 30-minute horizon, seed ${values.seed}
regression: canary 1% → 5% errors from the start; healthy: canary at 1% (false rollbacks)
peers' rule: errors <= 2% (success rate >= 98%, twice the healthy rate) per check window

${'rule'.padEnd(58)} ${'median'.padStart(8)} ${'p95'.padStart(8)} ${'detected'.padStart(9)} ${'false rollbacks'.padStart(16)}
${summarise(`Slipway: anytime-valid test, alpha 0.01, every ${INTERVAL} s`, slipway)}
${summarise('Flagger defaults: each 60 s, threshold 1', (r) => flagger(r, 1))}
${summarise('Flagger at its fastest: each 10 s, threshold 1', (r) => flagger(r, 1, 10))}
${summarise('Flagger: each 60 s, threshold 5', (r) => flagger(r, 5))}
${summarise('Argo Rollouts docs example: 5 min interval, failureLimit 3', argo)}`);
