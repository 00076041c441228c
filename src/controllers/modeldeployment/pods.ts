// Why a revision's pods are not ready, in one line a person can act on: read from the pods' status as the
// kubelet (or the local pod runner) reports it, so that the ModelDeployment's Ready condition names the cause
// (a model the initializer cannot fetch, an image that cannot be pulled, a server that keeps exiting) instead
// of only "waiting for replicas". Pure: no API calls.
import type { KubeObject } from '../../kube/resources.ts';
import { LABEL_MODEL_DEPLOYMENT, LABEL_REVISION } from './children.ts';

type State = {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: { exitCode?: number; reason?: string; message?: string };
};

interface ContainerStatus {
  name: string;
  ready?: boolean;
  restartCount?: number;
  state?: State;
  lastState?: State;
}

export interface PodStatusView extends KubeObject {
  status?: {
    phase?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    initContainerStatuses?: ContainerStatus[];
    containerStatuses?: ContainerStatus[];
  };
}

/** What a pod reports about itself, reduced to what the plan needs. */
export interface PodSummary {
  name: string;
  ready: boolean;
  /** Why it is not ready, when its status says; undefined when it is ready or simply starting. */
  problem: string | undefined;
}

const MAX_DETAIL = 300;

/** The last non-empty line of a termination message or waiting message: usually the error itself. */
function detail(message: string | undefined): string {
  const line = (message ?? '').trim().split('\n').filter((l) => l.trim()).pop()?.trim() ?? '';
  return line.length > MAX_DETAIL ? `${line.slice(0, MAX_DETAIL - 1)}…` : line;
}

const restarts = (c: ContainerStatus): string => (c.restartCount ? `, ${c.restartCount} restart${c.restartCount === 1 ? '' : 's'}` : '');

function containerProblem(c: ContainerStatus, what: string): string | undefined {
  const waiting = c.state?.waiting;
  const last = c.state?.terminated ?? c.lastState?.terminated;
  const failed = last && (last.exitCode ?? 0) !== 0 ? last : undefined;
  if (waiting?.reason && !['PodInitializing', 'ContainerCreating'].includes(waiting.reason)) {
    if (failed) return `${what} ${c.name} failed (exit ${failed.exitCode}${restarts(c)}): ${detail(failed.message) || failed.reason || 'no message'}`;
    if (waiting.reason === 'CrashLoopBackOff' && last) {
      return `${what} ${c.name} keeps exiting (exit ${last.exitCode ?? 0}${restarts(c)}): ${detail(last.message) || `see kubectl logs -c ${c.name}`}`;
    }
    return `${what} ${c.name}: ${waiting.reason}${waiting.message ? `: ${detail(waiting.message)}` : ''}`;
  }
  if (waiting?.reason === 'ContainerCreating' && waiting.message) return `${what} ${c.name}: ${detail(waiting.message)}`;
  if (failed && !c.state?.running) return `${what} ${c.name} failed (exit ${failed.exitCode}${restarts(c)}): ${detail(failed.message) || failed.reason || 'no message'}`;
  return undefined;
}

/** The first thing wrong with a pod, or undefined. */
export function podProblem(pod: PodStatusView): string | undefined {
  const s = pod.status ?? {};
  for (const c of s.initContainerStatuses ?? []) {
    if (c.state?.terminated?.exitCode === 0) continue;
    const p = containerProblem(c, 'init container');
    if (p) return p;
  }
  for (const c of s.containerStatuses ?? []) {
    const p = containerProblem(c, 'container');
    if (p) return p;
  }
  const unschedulable = s.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (unschedulable) return `not scheduled: ${detail(unschedulable.message) || unschedulable.reason || ''}`.trim();
  return undefined;
}

export function podReady(pod: PodStatusView): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

export function summarize(pod: PodStatusView): PodSummary {
  const ready = podReady(pod);
  return { name: pod.metadata.name, ready, problem: ready ? undefined : podProblem(pod) };
}

/** What the controller's cache keeps of a pod: the labels it is indexed by, and its summary. */
export interface CachedPod extends KubeObject {
  summary: PodSummary;
}

/**
 * A pod as the controller's cache keeps it: its name, the two labels that say whose revision it is, and what
 * `summarize` reads from its status, read once as it arrives (the spec and the rest of the status are dropped:
 * 0.39 KiB a pod against 1.13 when the status fields were kept and summarized at each look; bench/README.md).
 */
export function podForCache(obj: KubeObject): CachedPod {
  const pod = obj as PodStatusView;
  const { name, namespace, resourceVersion, labels = {} } = pod.metadata;
  const md = labels[LABEL_MODEL_DEPLOYMENT];
  const revision = labels[LABEL_REVISION];
  return {
    metadata: { name, ...(namespace ? { namespace } : {}), ...(resourceVersion ? { resourceVersion } : {}), labels: { ...(md ? { [LABEL_MODEL_DEPLOYMENT]: md } : {}), ...(revision ? { [LABEL_REVISION]: revision } : {}) } },
    summary: summarize(pod),
  };
}

/** One line for a revision's condition: the first pod's problem, and how many more pods have one. */
export function revisionProblem(pods: PodSummary[]): string | undefined {
  const troubled = pods.filter((p) => p.problem).sort((a, b) => a.name.localeCompare(b.name));
  const first = troubled[0];
  if (!first) return undefined;
  const more = troubled.length > 1 ? ` (and ${troubled.length - 1} more pod${troubled.length > 2 ? 's' : ''})` : '';
  return `pod ${first.name}: ${first.problem}${more}`;
}
