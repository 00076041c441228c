// What `kubectl slipway` prints, as pure functions of the objects it read: a table of ModelDeployments, one
// ModelDeployment's status in detail (with why its pods are not ready), and its revision history. Colour only
// when asked (a TTY); widths fitted to the content.
import type { ModelDeploymentStatus } from '../api/modeldeployment.ts';
import { podProblem, podReady, type PodStatusView } from '../controllers/modeldeployment/pods.ts';

export interface MdView {
  metadata: { name: string; namespace?: string; creationTimestamp?: string; generation?: number };
  spec: { model: { name: string; version: string }; replicas?: number; paused?: boolean; rollout?: { steps?: unknown[] } };
  status?: ModelDeploymentStatus;
}

export interface RevisionView {
  metadata: { name: string; creationTimestamp?: string; labels?: Record<string, string> };
  revision?: number;
  data?: { modelVersion?: string; image?: string };
}

export interface EventView {
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  lastTimestamp?: string;
  eventTime?: string;
  involvedObject?: { kind?: string; name?: string };
}

export interface Style {
  bold(s: string): string;
  good(s: string): string;
  bad(s: string): string;
  dim(s: string): string;
}

export const plain: Style = { bold: (s) => s, good: (s) => s, bad: (s) => s, dim: (s) => s };
export const colour: Style = {
  bold: (s) => `\u001b[1m${s}\u001b[0m`,
  good: (s) => `\u001b[32m${s}\u001b[0m`,
  bad: (s) => `\u001b[31m${s}\u001b[0m`,
  dim: (s) => `\u001b[2m${s}\u001b[0m`,
};

/** Columns padded to their widest cell (measured without colour codes); the last column is not padded. */
export function table(rows: string[][]): string {
  // eslint-disable-next-line no-control-regex
  const width = (s: string): number => s.replace(/\u001b\[[0-9;]*m/g, '').length;
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, width(c))));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - width(c) + 3))).join('').trimEnd()).join('\n');
}

export function age(since: string | undefined, now: Date): string {
  if (!since) return '';
  const s = Math.max(0, Math.floor((now.getTime() - Date.parse(since)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

const condition = (md: MdView, type: string) => md.status?.conditions?.find((c) => c.type === type);

function readyCell(md: MdView, style: Style): string {
  const ready = condition(md, 'Ready');
  if (!ready) return style.dim('-');
  return ready.status === 'True' ? style.good('True') : condition(md, 'Stalled')?.status === 'True' ? style.bad('Stalled') : style.bad('False');
}

export function renderList(mds: MdView[], opts: { now: Date; style: Style; allNamespaces: boolean }): string {
  if (mds.length === 0) return 'No ModelDeployments found.';
  const s = opts.style;
  const header = [...(opts.allNamespaces ? ['NAMESPACE'] : []), 'NAME', 'MODEL', 'STABLE', 'CANARY', 'READY', 'AVAILABLE', 'AGE'];
  const rows = mds.map((md) => {
    const st = md.status ?? {};
    const stable = st.stable ? `v${st.stable.modelVersion} (${st.stable.revision})` : '-';
    const canary = st.canary ? `v${st.canary.modelVersion} (${st.canary.revision})${st.canary.weight !== undefined ? ` ${st.canary.weight}%` : ''}` : '-';
    return [
      ...(opts.allNamespaces ? [md.metadata.namespace ?? ''] : []),
      s.bold(md.metadata.name),
      md.spec.model.name,
      stable,
      canary,
      readyCell(md, s),
      `${st.availableReplicas ?? 0}/${md.spec.replicas ?? 0}`,
      age(md.metadata.creationTimestamp, opts.now),
    ];
  });
  return table([header, ...rows]);
}

/**
 * Events in the order they happened: by when they were last seen (whole seconds), then, within one second, by
 * their eventTime (microseconds; Slipway writes one on each Event, other writers may not).
 */
export function eventOrder(a: EventView, b: EventView): number {
  const at = (e: EventView): number => Date.parse(e.lastTimestamp ?? e.eventTime ?? '') || 0;
  const micro = (e: EventView): string => e.eventTime ?? '';
  return at(a) - at(b) || (micro(a) < micro(b) ? -1 : micro(a) > micro(b) ? 1 : 0);
}

export function renderStatus(md: MdView, related: { pods: PodStatusView[]; events: EventView[] }, opts: { now: Date; style: Style }): string {
  const s = opts.style;
  const st = md.status ?? {};
  const ready = condition(md, 'Ready');
  const lines: string[] = [];
  lines.push(`${s.bold(`${md.metadata.namespace ?? 'default'}/${md.metadata.name}`)}   model ${md.spec.model.name}, version ${md.spec.model.version} wanted`);
  lines.push(`Phase:      ${st.phase ?? 'Pending'}${md.spec.paused ? ' (spec.paused)' : ''}`);
  lines.push(`Ready:      ${readyCell(md, s)}${ready?.reason ? ` (${ready.reason})` : ''}`);
  if (ready?.message) lines.push(`Message:    ${ready.message}`);
  lines.push(`Stable:     ${st.stable ? `revision ${st.stable.revision}, model version ${st.stable.modelVersion}, image ${st.stable.image}` : '-'}`);
  if (st.canary) {
    const c = st.canary;
    lines.push(`Canary:     revision ${c.revision}, model version ${c.modelVersion}, ${c.availableReplicas ?? 0}/${c.replicas ?? 0} replicas available`);
    const steps = c.steps ?? md.spec.rollout?.steps?.length;
    if (c.step !== undefined && steps) lines.push(`Step:       ${c.step >= steps ? `all ${steps} done` : `${c.step + 1} of ${steps}`}${c.pauseUntil ? `, paused until ${c.pauseUntil}` : ''}`);
    if (c.weight !== undefined) lines.push(`Weight:     ${c.weight}% wanted${c.achievedWeight !== undefined ? `, ${c.achievedWeight}% actual` : ''}`);
  }
  if (st.aborted) lines.push(`Stopped:    ${s.bad(`revision ${st.aborted.revision} (model version ${st.aborted.modelVersion})`)}: ${st.aborted.message} (kubectl slipway retry ${md.metadata.name})`);
  if (st.pause) lines.push(`Paused by:  ${st.pause.by} at ${st.pause.at} (kubectl slipway resume ${md.metadata.name})`);
  if (st.override) lines.push(`Undo:       revision ${st.override.revision} serves instead of the spec's, by ${st.override.by}, until the spec changes`);
  if (st.lastRequest) lines.push(`Request:    ${st.lastRequest.verb} by ${st.lastRequest.by} at ${st.lastRequest.at}: ${st.lastRequest.result === 'Accepted' ? 'accepted' : s.bad('refused')}, ${st.lastRequest.message}`);
  lines.push(`Replicas:   ${st.availableReplicas ?? 0} available of ${md.spec.replicas ?? 0} wanted`);
  for (const r of st.retiring ?? []) lines.push(`Draining:   revision ${r.revision} since ${r.since}`);
  if (related.pods.length > 0) {
    lines.push('', s.bold('Pods'));
    const rows = related.pods
      .slice()
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
      .map((p) => {
        const problem = podReady(p) ? undefined : podProblem(p);
        const restarts = (p.status?.containerStatuses ?? []).reduce((n, c) => n + (c.restartCount ?? 0), 0);
        return [p.metadata.name, p.metadata.labels?.['slipway.dev/revision'] ?? '', podReady(p) ? s.good('Ready') : s.bad('NotReady'), String(restarts), problem ?? ''];
      });
    lines.push(table([['NAME', 'REVISION', 'READY', 'RESTARTS', 'WHY NOT READY'], ...rows]));
  }
  const events = related.events
    .slice()
    .sort(eventOrder)
    .slice(-10);
  if (events.length > 0) {
    lines.push('', s.bold('Events'));
    lines.push(table([['AGE', 'TYPE', 'REASON', 'MESSAGE'], ...events.map((e) => [age(e.lastTimestamp ?? e.eventTime, opts.now), e.type === 'Warning' ? s.bad('Warning') : (e.type ?? ''), e.reason ?? '', e.message ?? ''])]));
  }
  return lines.join('\n');
}

export function renderHistory(md: MdView, revisions: RevisionView[], opts: { now: Date; style: Style }): string {
  if (revisions.length === 0) return `No revisions of ${md.metadata.name} yet.`;
  const st = md.status ?? {};
  const rows = revisions
    .slice()
    .sort((a, b) => (a.revision ?? 0) - (b.revision ?? 0))
    .map((r) => {
      const rev = r.metadata.labels?.['slipway.dev/revision'] ?? '';
      const role = rev === st.stable?.revision ? opts.style.good('stable') : rev === st.canary?.revision ? 'canary' : (st.retiring ?? []).some((x) => x.revision === rev) ? 'draining' : '';
      return [String(r.revision ?? ''), rev, r.data?.modelVersion ?? '', r.data?.image ?? '', age(r.metadata.creationTimestamp, opts.now), role];
    });
  return table([['#', 'REVISION', 'MODEL VERSION', 'IMAGE', 'AGE', ''], ...rows]);
}
