// The Argo CD health checks (integrations/argocd/*.lua) run in a real Lua 5.4 (Argo CD runs them in gopher-lua,
// a Lua 5.1 dialect: the scripts use nothing either lacks) against the statuses the controller writes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const dir = join(import.meta.dirname, '..', '..', 'integrations', 'argocd');

/** A JSON value as a Lua table constructor. */
function lua(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `{${v.map(lua).join(', ')}}`;
  return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `[${JSON.stringify(k)}] = ${lua(x)}`).join(', ')}}`;
}

function health(kind: string, obj: unknown): string {
  const script = join(dir, `${kind}.lua`);
  return execFileSync('lua5.4', ['-e', `obj = ${lua(obj)}; local hs = assert(loadfile(${JSON.stringify(script)}))(); io.write(hs.status .. ": " .. hs.message)`], { encoding: 'utf8' });
}

const cond = (type: string, status: string, reason: string, message: string) => ({ type, status, reason, message, lastTransitionTime: '2026-11-26T00:00:00Z' });
const md = (status?: Record<string, unknown>, generation = 2) => ({ metadata: { name: 'churn', generation }, status });

test('ModelDeployment health in Argo CD: from the controller\'s conditions', () => {
  assert.equal(health('modeldeployment', md()), 'Progressing: Waiting for the Slipway controller');
  assert.equal(health('modeldeployment', md({ observedGeneration: 1, phase: 'Healthy', conditions: [cond('Ready', 'True', 'Succeeded', 'serving')] })), 'Progressing: Waiting for the controller to observe generation 2');
  assert.equal(health('modeldeployment', md({ observedGeneration: 2, phase: 'Healthy', conditions: [cond('Ready', 'True', 'Succeeded', 'revision abc of model churn version 8 is serving'), cond('Stalled', 'False', 'Succeeded', 'no errors')] })), 'Healthy: revision abc of model churn version 8 is serving');
  assert.equal(health('modeldeployment', md({ observedGeneration: 2, phase: 'RolledBack', conditions: [cond('Ready', 'True', 'Succeeded', 'x'), cond('Stalled', 'True', 'RolledBack', 'revision b rolled back: error-rate …')] })), 'Degraded: RolledBack: revision b rolled back: error-rate …');
  assert.equal(health('modeldeployment', md({ observedGeneration: 2, phase: 'Paused', conditions: [cond('Ready', 'False', 'Paused', 'paused by alice')] })), 'Suspended: paused by alice');
  assert.equal(health('modeldeployment', md({ observedGeneration: 2, phase: 'Progressing', conditions: [cond('Ready', 'False', 'RolloutInProgress', 'canary at 10%'), cond('Reconciling', 'True', 'RolloutInProgress', 'canary revision b at 10% of traffic')] })), 'Progressing: canary revision b at 10% of traffic');
});

test('ProjectEnvironment and Experiment health in Argo CD', () => {
  assert.equal(health('projectenvironment', { metadata: {}, status: { phase: 'Ready', image: 'r/e@sha256:ab' } }), 'Healthy: Image r/e@sha256:ab');
  assert.equal(health('projectenvironment', { metadata: {}, status: { phase: 'Building' } }), 'Progressing: Building');
  assert.equal(health('projectenvironment', { metadata: {}, status: { phase: 'Failed', conditions: [cond('Stalled', 'True', 'ResolutionFailed', 'pandas==99 does not exist')] } }), 'Degraded: pandas==99 does not exist');
  assert.equal(health('experiment', { metadata: {}, status: { phase: 'Concluded', winner: 'b' } }), 'Healthy: Winner: b');
  assert.equal(health('experiment', { metadata: {}, status: { phase: 'Running' } }), 'Progressing: Running');
  assert.equal(health('experiment', { metadata: {}, status: { phase: 'Stopped' } }), 'Suspended: Stopped');
});
