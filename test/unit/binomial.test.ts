// Proportion intervals against published values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalQuantile, wilsonInterval } from '../../src/stats/binomial.ts';

const close = (a: number, b: number, tol: number): void => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('normal quantiles match the tables', () => {
  close(normalQuantile(0.975), 1.959963985, 1e-8);
  close(normalQuantile(0.995), 2.575829304, 1e-8);
  close(normalQuantile(0.5), 0, 1e-12);
  close(normalQuantile(0.001), -3.090232306, 1e-8);
  assert.throws(() => normalQuantile(1), RangeError);
});

test('Wilson intervals match worked examples (Newcombe 1998, 95%)', () => {
  // 81 of 263: 0.2553 to 0.3662; 15 of 148: 0.0624 to 0.1605; 0 of 20: 0 to 0.1611.
  const a = wilsonInterval(81, 263, 0.95);
  close(a.low, 0.2553, 5e-5);
  close(a.high, 0.3662, 5e-5);
  const b = wilsonInterval(15, 148, 0.95);
  close(b.low, 0.0624, 5e-5);
  close(b.high, 0.1605, 5e-5);
  const c = wilsonInterval(0, 20, 0.95);
  assert.equal(c.low, 0);
  close(c.high, 0.1611, 5e-5);
});

test('a 99% interval over 2,000 requests is about ±2.3 points around 20%', () => {
  const i = wilsonInterval(400, 2000, 0.99);
  assert.ok(i.low < 0.2 && i.high > 0.2);
  close(i.high - i.low, 0.046, 0.002);
  assert.ok(wilsonInterval(460, 2000, 0.99).low > 0.2, '23% over 2,000 is not 20%');
});
