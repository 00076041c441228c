// The replica-ratio router's arithmetic: replica counts for a weight, and the weight they really give.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { replicaSplit } from '../../src/controllers/modeldeployment/routers/replica-ratio.ts';

const rows: [total: number, weight: number, scaleDownStable: boolean, canary: number, stable: number, achieved: number][] = [
  [10, 10, true, 1, 9, 10],
  [10, 50, true, 5, 5, 50],
  [10, 90, true, 9, 1, 90],
  [4, 10, true, 1, 3, 25],
  [1, 10, true, 1, 1, 50],
  [3, 50, true, 2, 1, 67],
  [10, 10, false, 1, 10, 9],
  [10, 50, false, 10, 10, 50],
  [9, 20, false, 2, 9, 18],
  [1, 50, false, 1, 1, 50],
  [5, 0, false, 0, 5, 0],
  [5, 100, true, 5, 0, 100],
  [0, 50, true, 0, 0, 0],
];

for (const [total, weight, scaleDownStable, canary, stable, achieved] of rows) {
  test(`${total} replicas at ${weight}%${scaleDownStable ? ', stable scaled down' : ''}: ${canary} canary, ${stable} stable, ${achieved}% achieved`, () => {
    assert.deepEqual(replicaSplit(total, weight, { scaleDownStable }), { canary, stable, achievedWeight: achieved });
  });
}

test('below 100% both sides keep a pod; above 0% the canary has one', () => {
  for (let total = 1; total <= 20; total++) {
    for (let w = 1; w < 100; w++) {
      for (const scaleDownStable of [true, false]) {
        const s = replicaSplit(total, w, { scaleDownStable });
        assert.ok(s.canary >= 1 && s.stable >= 1, `${total} at ${w}%: ${JSON.stringify(s)}`);
        if (scaleDownStable && total >= 2) assert.equal(s.canary + s.stable, total, 'the total stays');
      }
    }
  }
});
