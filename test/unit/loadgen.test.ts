// The load generator: open model (requests leave on schedule, however slow the server), every answer attributed
// to the version that gave it, and never a byte to an address outside this machine and the local pods.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { assertLocalTarget, runLoad, summarize } from '../../local/loadgen.ts';

test('only loopback and the local pod range are targets', () => {
  for (const ok of ['http://127.0.0.1:8080/x', 'http://127.3.4.5/x', 'http://localhost:1/x', 'http://[::1]:80/x', 'http://10.244.1.7:8080/v2']) assertLocalTarget(ok);
  for (const bad of ['http://10.0.0.1/x', 'http://192.168.1.1/x', 'http://8.8.8.8/x', 'http://example.com/x', 'http://10.245.0.1/x']) {
    assert.throws(() => assertLocalTarget(bad), /refusing to send load/, bad);
  }
});

test('requests leave at the fixed rate even when the server is slow (open model), and answers are attributed by version', async (t) => {
  const arrivals: number[] = [];
  let n = 0;
  const server = createServer((req, res) => {
    arrivals.push(performance.now());
    const version = n++ % 4 === 0 ? '9' : '8';
    req.resume();
    setTimeout(() => res.writeHead(version === '9' ? 500 : 200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ model_version: version })), 300);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/v2/models/m/infer`;
  const samples = await runLoad({ url, body: '{}', rate: 40, durationSeconds: 1 });
  assert.equal(samples.length, 40);
  // A closed loop of one would need 40 × 300 ms; an open one sends all 40 within the second they are due in.
  const spread = (arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0);
  assert.ok(spread < 1000 + 250, `40 requests arrived over ${Math.round(spread)} ms`);
  const s = summarize(samples);
  assert.deepEqual([s['8']?.requests, s['8']?.errors, s['9']?.requests, s['9']?.errors], [30, 0, 10, 10]);
});
