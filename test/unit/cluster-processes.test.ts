// The control plane's processes never outlive a test run that dies, and stopping one never touches a process
// we did not start.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePorts, isOurProcess, startComponent, stopProcess } from '../../local/processes.ts';
import { eventually } from '../../local/eventually.ts';

const processesModule = new URL('../../local/processes.ts', import.meta.url).href;
const SLEEP = '/bin/sleep';

test('a component started for a test dies when the process that started it is killed with SIGKILL', async () => {
  const logDir = mkdtempSync(join(tmpdir(), 'slipway-proc-'));
  const script = `
    const { startComponent } = await import(${JSON.stringify(processesModule)});
    const c = startComponent('sleeper', ${JSON.stringify(SLEEP)}, ['300'], ${JSON.stringify(logDir)}, false);
    process.stdout.write(String(c.pid) + '\\n');
    setInterval(() => {}, 1000);`;
  const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  parent.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const parentExit = new Promise<never>((_, reject) => parent.on('exit', (code) => reject(new Error(`the parent exited (${code}) before reporting a pid`))));
  const pid = await eventually('the parent to report the sleeper\'s pid', () => (out.includes('\n') ? Number(out.trim()) : undefined), { abort: parentExit, timeoutMs: 20_000 });
  await eventually('the sleeper to be running', () => isOurProcess({ pid, bin: SLEEP }));

  parent.kill('SIGKILL');
  await eventually('the sleeper to die with its parent', () => !isOurProcess({ pid, bin: SLEEP }), { timeoutMs: 10_000 });
});

test('stopProcess ends a component and leaves alone a process with another binary or a recycled pid', async () => {
  const logDir = mkdtempSync(join(tmpdir(), 'slipway-proc-'));
  const c = startComponent('sleeper', SLEEP, ['300'], logDir, false);
  await eventually('the sleeper to be running', () => isOurProcess(c));

  // Same pid, other binary: a recycled pid must not be signalled.
  await stopProcess({ pid: c.pid, bin: '/usr/bin/some-other-binary' });
  assert.ok(isOurProcess(c), 'the process survives a stop aimed at another binary');
  await stopProcess({ pid: c.pid, bin: SLEEP, startTime: (c.startTime ?? 0) + 1 });
  assert.ok(isOurProcess(c), 'the process survives a stop aimed at an earlier owner of its pid');

  await stopProcess(c);
  assert.equal(isOurProcess(c), false);
});

test('a component that exits before it is ready rejects with the end of its log', async () => {
  const logDir = mkdtempSync(join(tmpdir(), 'slipway-proc-'));
  const c = startComponent('failing', '/bin/sh', ['-c', 'echo "bind: address already in use" >&2; exit 3'], logDir, false);
  await assert.rejects(c.exited, /failing exited \(code 3\)[\s\S]*address already in use/);
});

test('freePorts returns distinct loopback ports', async () => {
  const ports = await freePorts(6);
  assert.equal(new Set(ports).size, 6);
  for (const p of ports) assert.ok(p > 0 && p < 65536);
});
