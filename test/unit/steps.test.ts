// The canary step machine, table-driven: every step kind, the clock, promotes, and a restart at every step (a
// fresh evaluation from the recorded progress lands where the running one would).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { durationMs, evaluateSteps, type Step, type StepInputs, type StepProgress } from '../../src/controllers/modeldeployment/steps.ts';

const T0 = new Date('2026-11-26T10:00:00Z');
const at = (seconds: number): Date => new Date(T0.getTime() + seconds * 1000);
const steps: Step[] = [{ setWeight: 10 }, { pause: { duration: '5m' } }, { setWeight: 50 }, { pause: {} }, { analysis: {} }, { setWeight: 100 }];

test('durations as the API writes them', () => {
  assert.equal(durationMs('5m'), 300_000);
  assert.equal(durationMs('1h30m'), 5_400_000);
  assert.equal(durationMs('1.5s'), 1500);
  assert.equal(durationMs('250ms'), 250);
});

test('no steps: complete at once, all traffic to the new revision (today\'s behaviour)', () => {
  const o = evaluateSteps([], undefined, { now: T0, canaryReady: false });
  assert.equal(o.complete, true);
  assert.equal(o.progress.weight, 100);
});

interface Row {
  what: string;
  from: StepProgress | undefined;
  input: Partial<StepInputs> & { now: Date };
  step: number;
  weight: number;
  complete?: boolean;
  waiting?: string;
  untilSeconds?: number;
}

const rows: Row[] = [
  { what: 'the first step sets the weight at once and waits for the canary', from: undefined, input: { now: T0, canaryReady: false }, step: 0, weight: 10, waiting: 'CanaryNotReady' },
  { what: 'the canary ready for 10%: on to the timed pause', from: { step: 0, weight: 10, since: '2026-11-26T10:00:00Z' }, input: { now: at(30), canaryReady: true }, step: 1, weight: 10, waiting: 'Paused', untilSeconds: 330 },
  { what: 'the pause counts from when it began, not from this evaluation', from: { step: 1, weight: 10, since: '2026-11-26T10:00:30Z' }, input: { now: at(200), canaryReady: true }, step: 1, weight: 10, waiting: 'Paused', untilSeconds: 330 },
  { what: 'the pause over: 50% at once', from: { step: 1, weight: 10, since: '2026-11-26T10:00:30Z' }, input: { now: at(330), canaryReady: true }, step: 2, weight: 50, waiting: 'CanaryNotReady' },
  { what: 'a promote ends a timed pause early', from: { step: 1, weight: 10, since: '2026-11-26T10:00:30Z' }, input: { now: at(60), canaryReady: true, promoteAt: 1 }, step: 2, weight: 50, waiting: 'CanaryNotReady' },
  { what: 'ready for 50%: an indefinite pause waits for promote', from: { step: 2, weight: 50, since: '2026-11-26T10:05:30Z' }, input: { now: at(400), canaryReady: true }, step: 3, weight: 50, waiting: 'AwaitingPromotion' },
  { what: 'an indefinite pause waits however long', from: { step: 3, weight: 50, since: '2026-11-26T10:06:40Z' }, input: { now: at(86_400), canaryReady: true }, step: 3, weight: 50, waiting: 'AwaitingPromotion' },
  { what: 'a promote spent at an earlier step does not pass this one', from: { step: 3, weight: 50, since: '2026-11-26T10:06:40Z' }, input: { now: at(500), canaryReady: true, promoteAt: 1 }, step: 3, weight: 50, waiting: 'AwaitingPromotion' },
  { what: 'promoted: on to analysis, which waits (it never passes on its own)', from: { step: 3, weight: 50, since: '2026-11-26T10:06:40Z' }, input: { now: at(500), canaryReady: true, promoteAt: 3 }, step: 4, weight: 50, waiting: 'AwaitingAnalysis' },
  { what: 'promoted past analysis: the last step takes 100%', from: { step: 4, weight: 50, since: '2026-11-26T10:08:20Z' }, input: { now: at(600), canaryReady: true, promoteAt: 4 }, step: 5, weight: 100, waiting: 'CanaryNotReady' },
  { what: 'ready at 100%: complete', from: { step: 5, weight: 100, since: '2026-11-26T10:10:00Z' }, input: { now: at(610), canaryReady: true }, step: 6, weight: 100, complete: true },
  { what: 'promote-full from anywhere: complete at 100%', from: { step: 1, weight: 10, since: '2026-11-26T10:00:30Z' }, input: { now: at(40), canaryReady: false, promoteFull: true }, step: 6, weight: 100, complete: true },
  { what: 'a canary that lost replicas holds the step (and the weight) until it is ready again', from: { step: 2, weight: 50, since: '2026-11-26T10:05:30Z' }, input: { now: at(900), canaryReady: false }, step: 2, weight: 50, waiting: 'CanaryNotReady' },
];

for (const r of rows) {
  test(`steps: ${r.what}`, () => {
    const o = evaluateSteps(steps, r.from, { canaryReady: false, ...r.input });
    assert.equal(o.progress.step, r.step, 'step');
    assert.equal(o.progress.weight, r.weight, 'weight');
    assert.equal(o.complete, r.complete ?? false, 'complete');
    assert.equal(o.waiting?.reason, r.waiting);
    if (r.untilSeconds !== undefined) assert.equal(o.waiting?.until?.getTime(), at(r.untilSeconds).getTime());
  });
}

test('a restart at every step resumes exactly where the rollout was: evaluating again with nothing new changes nothing', () => {
  // Walk the whole rollout, promoting each step as it is reached; at every point, a restarted controller (or the
  // same event delivered twice) evaluates again from the recorded progress alone.
  let progress: StepProgress | undefined;
  const seen: string[] = [];
  for (let i = 0; i < 20; i++) {
    const now = at(i * 10);
    const once = evaluateSteps(steps, progress, { now, canaryReady: true, promoteAt: progress?.step ?? 0 });
    assert.deepEqual(evaluateSteps(steps, progress, { now, canaryReady: true, promoteAt: progress?.step ?? 0 }), once, 'the same inputs, the same outcome');
    if (!once.complete) {
      const again = evaluateSteps(steps, once.progress, { now, canaryReady: false });
      assert.deepEqual(again.progress, once.progress, `nothing new at ${JSON.stringify(once.progress)}: nothing moves`);
    }
    seen.push(`${once.progress.step}:${once.progress.weight}`);
    progress = once.progress;
    if (once.complete) break;
  }
  assert.deepEqual(seen, ['0:10', '1:10', '2:50', '3:50', '4:50', '5:100', '6:100']);
});

test('at most one weight change per evaluation, and Events name each step begun', () => {
  const o = evaluateSteps([{ setWeight: 10 }, { setWeight: 20 }, { setWeight: 30 }], { step: 0, weight: 10, since: '2026-11-26T10:00:00Z' }, { now: T0, canaryReady: true });
  assert.equal(o.progress.weight, 20, 'ready at 10% moves to 20%, not further: readiness for 20% is not known yet');
  assert.deepEqual(o.entered, [{ step: 1, description: 'setWeight 20%' }]);
});
