// A load generator for V2 inference, open model: requests leave at a fixed arrival rate whether or not earlier
// ones have answered (a closed loop would slow down with the server and hide its latency). Each request's status,
// latency and the model version that answered (the V2 response names it) are recorded.
//
//   node local/loadgen.ts --url http://127.0.0.1:8080/v2/models/iris/infer --body request.json --rate 50 --duration 10
//
// It only ever sends to loopback (127.0.0.0/8, ::1) or to the local cluster's pod range (10.244.0.0/16, reached
// through the local data plane's bridge); any other address is refused before a byte is sent.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

export interface Sample {
  /** Milliseconds after the start at which the request was due. */
  at: number;
  status: number;
  latencyMs: number;
  version: string | undefined;
  error?: string;
}

export interface LoadOptions {
  url: string;
  /** The request body, or a function giving the body of the i-th request (a traffic mix). */
  body: string | ((i: number) => string);
  /** Requests per second. */
  rate: number;
  durationSeconds: number;
  /** Give up on a request after this long (counted as status 0). */
  timeoutMs?: number;
  /** Stop sending early (what was sent is still awaited and returned). */
  stop?: AbortSignal;
  /** Called with each answer as it arrives (a live view). */
  onSample?: (s: Sample) => void;
}

/** The addresses the project may send to: this machine, and pods of the local cluster. */
export function assertLocalTarget(url: string): void {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const v4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(host);
  const local = host === 'localhost' || host === '::1' || (v4 !== null && (v4[1] === '127' || (v4[1] === '10' && v4[2] === '244')));
  if (!local) throw new Error(`refusing to send load to ${host}: only loopback and the local pod range (10.244.0.0/16) are allowed`);
}

export async function runLoad(opts: LoadOptions): Promise<Sample[]> {
  assertLocalTarget(opts.url);
  const total = Math.round(opts.rate * opts.durationSeconds);
  const interval = 1000 / opts.rate;
  const started = performance.now();
  const pending: Promise<Sample>[] = [];
  for (let i = 0; i < total && !opts.stop?.aborted; i++) {
    const due = i * interval;
    const wait = due - (performance.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const sent = one(opts, due, typeof opts.body === 'string' ? opts.body : opts.body(i));
    if (opts.onSample) void sent.then(opts.onSample);
    pending.push(sent);
  }
  return Promise.all(pending);
}

async function one(opts: LoadOptions, at: number, body: string): Promise<Sample> {
  const t0 = performance.now();
  try {
    // A redirect is recorded as its status, never followed: it could point anywhere.
    const res = await fetch(opts.url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body, redirect: 'manual', signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000) });
    const text = await res.text();
    const latencyMs = performance.now() - t0;
    let version: string | undefined;
    try {
      version = (JSON.parse(text) as { model_version?: string }).model_version;
    } catch {
      version = undefined;
    }
    return { at, status: res.status, latencyMs, version };
  } catch (err) {
    return { at, status: 0, latencyMs: performance.now() - t0, version: undefined, error: err instanceof Error ? err.message : String(err) };
  }
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

/** Per answering version: requests, errors, and latency percentiles. */
export function summarize(samples: Sample[]): Record<string, { requests: number; errors: number; p50: number; p95: number; p99: number }> {
  const out: Record<string, { requests: number; errors: number; p50: number; p95: number; p99: number }> = {};
  const groups = new Map<string, Sample[]>();
  for (const s of samples) {
    const key = s.version ?? (s.status === 0 ? 'no answer' : 'unnamed');
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  for (const [key, list] of groups) {
    const sorted = list.map((s) => s.latencyMs).sort((a, b) => a - b);
    out[key] = { requests: list.length, errors: list.filter((s) => s.status !== 200).length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99) };
  }
  return out;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { url: { type: 'string' }, body: { type: 'string' }, rate: { type: 'string', default: '20' }, duration: { type: 'string', default: '10' } },
  });
  if (!values.url || !values.body) throw new Error('usage: loadgen.ts --url URL --body FILE [--rate PER_SECOND] [--duration SECONDS]');
  const samples = await runLoad({ url: values.url, body: readFileSync(values.body, 'utf8'), rate: Number(values.rate), durationSeconds: Number(values.duration) });
  console.log(JSON.stringify(summarize(samples), null, 2));
}
