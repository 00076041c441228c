// The canary step machine: where a rollout stands in spec.rollout.steps and what it does next, as a pure function
// of the steps, the progress recorded in status, the clock and what the cluster reports. Nothing is remembered
// between calls: a restarted controller, a second replica or an event seen twice evaluates to the same place.
// Timed pauses end by requeue (the outcome says when), never by polling.
//
//   setWeight w    the canary's share becomes w at once (the traffic router follows); the step is done when the
//                  canary is ready to carry it (its replicas for w available)
//   pause {d}      done d after it began, or at a promote
//   pause {}       done at a promote
//   analysis {}    done when its analysis passes (or at a promote); a failed one rolls back, an inconclusive one pauses
//   (past the last step) the rollout is complete: the canary takes 100% and becomes stable
import type { ModelDeploymentSpec } from '../../api/modeldeployment.ts';
import { rfc3339 } from '../../kube/time.ts';

export type Step = NonNullable<NonNullable<ModelDeploymentSpec['rollout']>['steps']>[number];

/** Where a rollout is: kept in status (canary.step, canary.weight, canary.stepStartedAt). */
export interface StepProgress {
  /** The step being run; steps.length once every step is done. */
  step: number;
  /** The canary's share of traffic, 0–100. */
  weight: number;
  /** When the current step began (RFC 3339): what a timed pause counts from. */
  since: string;
}

export interface StepInputs {
  now: Date;
  /** The canary has, available, the replicas the current weight needs. */
  canaryReady: boolean;
  /** A promote asked for while the rollout stood at this step (a promote for an earlier step is spent). */
  promoteAt?: number | undefined;
  /** Skip every remaining step. */
  promoteFull?: boolean;
  /** The analysis of this step passed. */
  analysisPassedAt?: number | undefined;
}

export type WaitReason = 'CanaryNotReady' | 'Paused' | 'AwaitingPromotion' | 'AwaitingAnalysis';

export interface StepOutcome {
  progress: StepProgress;
  complete: boolean;
  waiting?: { reason: WaitReason; message: string; /** A timed pause: evaluate again at this time. */ until?: Date };
  /** The steps begun during this evaluation, for Events. */
  entered: { step: number; description: string }[];
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `1h30m`, `90s`, `1.5m` → milliseconds (the API's duration pattern). */
export function durationMs(d: string): number {
  let total = 0;
  for (const [, n, unit] of d.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) total += Number(n) * (UNITS[unit ?? 's'] ?? 0);
  return total;
}

export function describeStep(s: Step | undefined): string {
  if (!s) return 'complete';
  if (s.setWeight !== undefined) return `setWeight ${s.setWeight}%`;
  if (s.pause) return s.pause.duration ? `pause ${s.pause.duration}` : 'pause until promoted';
  return 'analysis';
}

/** Evaluates the steps from the recorded progress; at most one weight change per evaluation. */
export function evaluateSteps(steps: Step[], current: StepProgress | undefined, input: StepInputs): StepOutcome {
  const now = rfc3339(input.now);
  const entered: StepOutcome['entered'] = [];
  let p: StepProgress = current ? { ...current } : { step: 0, weight: 0, since: now };
  if (!current && steps.length > 0) entered.push({ step: 0, description: describeStep(steps[0]) });
  const next = (): void => {
    p = { step: p.step + 1, weight: p.weight, since: now };
    entered.push({ step: p.step, description: describeStep(steps[p.step]) });
  };
  if (input.promoteFull) return { progress: { step: steps.length, weight: 100, since: now }, complete: true, entered: [{ step: steps.length, description: 'complete (promoted in full)' }] };

  for (let guard = 0; guard <= steps.length; guard++) {
    const s = steps[p.step];
    if (!s) return { progress: { ...p, weight: 100 }, complete: true, entered };
    const promoted = input.promoteAt === p.step;
    const position = `step ${p.step + 1} of ${steps.length}`;
    if (s.setWeight !== undefined) {
      if (p.weight !== s.setWeight) {
        // The weight moves now; whether the canary can carry it is the next evaluation's question.
        p = { ...p, weight: s.setWeight };
        return { progress: p, complete: false, waiting: { reason: 'CanaryNotReady', message: `${position}: scaling the canary for ${s.setWeight}% of traffic` }, entered };
      }
      if (!input.canaryReady) {
        return { progress: p, complete: false, waiting: { reason: 'CanaryNotReady', message: `${position}: waiting for the canary's replicas for ${s.setWeight}% to be available` }, entered };
      }
      next();
      continue;
    }
    if (s.pause) {
      if (promoted) {
        next();
        continue;
      }
      if (s.pause.duration) {
        const until = new Date(Date.parse(p.since) + durationMs(s.pause.duration));
        if (input.now.getTime() >= until.getTime()) {
          next();
          continue;
        }
        return { progress: p, complete: false, waiting: { reason: 'Paused', message: `${position}: paused until ${rfc3339(until)} at ${p.weight}%`, until }, entered };
      }
      return { progress: p, complete: false, waiting: { reason: 'AwaitingPromotion', message: `${position}: paused at ${p.weight}% until promoted` }, entered };
    }
    // An analysis step: passed by its analysis, or by a promote.
    if (promoted || input.analysisPassedAt === p.step) {
      next();
      continue;
    }
    return { progress: p, complete: false, waiting: { reason: 'AwaitingAnalysis', message: `${position}: analysis at ${p.weight}%` }, entered };
  }
  return { progress: { ...p, weight: 100 }, complete: true, entered };
}
