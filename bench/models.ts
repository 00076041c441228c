// The local models under the same open-model load, one after the other, through real MLServer processes started
// with the mlserver preset's settings: latency percentiles per model and the slow/good ratio, error shares, and
// each server's memory (VmHWM from /proc).
//   npm run bench:models -- --rate 20 --duration 10
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runLoad, summarize } from '../local/loadgen.ts';
import { frameRequest, startMlserver, trainModel } from '../local/mlserver.ts';
import { ensurePythonEnv } from '../local/python.ts';

const { values } = parseArgs({ options: { rate: { type: 'string', default: '20' }, duration: { type: 'string', default: '10' } } });

/** Peak RSS of a process and its children (MLServer runs inference in worker processes). */
function treeRssMiB(pid: number): number {
  let kb = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  let children: string[];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    children = [];
  }
  for (const c of children) kb += treeRssMiB(Number(c)) * 1024;
  return kb / 1024;
}

const bin = await ensurePythonEnv((l) => console.error(l));
const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-models-'));
const results: Record<string, { p50: number; p95: number; p99: number; errors: number; requests: number; rss: number }> = {};
for (const kind of ['good', 'better', 'slow', 'strict']) {
  const { modelDir, offline } = await trainModel(bin, dir, kind, 2);
  const server = await startMlserver({ bin, dir, modelDir, name: 'iris', version: kind });
  try {
    // One row per request; every fifth row carries a band no model was trained on.
    const band = offline.columns.indexOf('band');
    const row = offline.rows[1] ?? [];
    const unseen = row.map((v, c) => (c === band ? 'huge' : v));
    const body = frameRequest(offline.columns, [row]);
    const odd = frameRequest(offline.columns, [unseen]);
    const url = `${server.base}/v2/models/iris/infer`;
    const normal = await runLoad({ url, body, rate: Number(values.rate) * 0.8, durationSeconds: Number(values.duration) });
    const drifted = await runLoad({ url, body: odd, rate: Number(values.rate) * 0.2, durationSeconds: Number(values.duration) });
    const all = [...normal, ...drifted];
    const s = summarize(all.map((x) => ({ ...x, version: kind })))[kind];
    results[kind] = { p50: s?.p50 ?? NaN, p95: s?.p95 ?? NaN, p99: s?.p99 ?? NaN, errors: s?.errors ?? 0, requests: s?.requests ?? 0, rss: treeRssMiB(server.pid) };
  } finally {
    await server.stop();
  }
}
console.log(`open-model load: ${values.rate} requests/s for ${values.duration} s per model (20% of rows with an unseen band), one MLServer at a time`);
for (const [kind, r] of Object.entries(results)) {
  console.log(`${kind.padEnd(7)} p50 ${r.p50.toFixed(1).padStart(7)} ms   p95 ${r.p95.toFixed(1).padStart(7)} ms   p99 ${r.p99.toFixed(1).padStart(7)} ms   errors ${r.errors}/${r.requests}   server tree peak RSS ${r.rss.toFixed(0)} MiB`);
}
console.log(`slow / good p50 latency: ${((results.slow?.p50 ?? NaN) / (results.good?.p50 ?? NaN)).toFixed(1)}×`);
