// The replica-ratio router (no mesh, no gateway): one Service selects the pods of both revisions, so the canary's
// share of requests is its share of the ready pods. A weight is approximated by replica counts, and the share the
// counts give is reported as what it is (status shows desired and achieved weight side by side).
//
// Two ways to make room: by default the stable side keeps all its replicas and the canary is added beside it
// (needs up to twice the pods); with scaleDownStable the total stays as it is and the stable side gives up what
// the canary takes, so a large model's rollout does not need twice its pods. Either way, while the weight is
// below 100 each side keeps at least one pod, and above 0 the canary has at least one.

export interface ReplicaSplit {
  canary: number;
  stable: number;
  /** The canary's share of the pods, in percent (rounded): what the split really sends it. */
  achievedWeight: number;
}

export function replicaSplit(total: number, weight: number, opts: { scaleDownStable: boolean }): ReplicaSplit {
  if (!Number.isInteger(total) || total < 0) throw new RangeError(`replicaSplit: total must be a whole number >= 0, got ${total}`);
  const w = Math.min(100, Math.max(0, weight));
  if (total === 0) return { canary: 0, stable: 0, achievedWeight: w === 100 ? 100 : 0 };
  if (w === 0) return { canary: 0, stable: total, achievedWeight: 0 };
  if (w === 100) return { canary: total, stable: 0, achievedWeight: 100 };
  let canary: number;
  let stable: number;
  if (opts.scaleDownStable) {
    // The total stays; the canary takes its share of it, leaving the stable side at least one pod.
    canary = Math.min(Math.max(1, Math.round((total * w) / 100)), Math.max(1, total - 1));
    stable = Math.max(1, total - canary);
  } else {
    // The stable side keeps `total`; the canary is sized so that canary / (canary + total) is nearest to w.
    stable = total;
    canary = Math.max(1, Math.round((total * w) / (100 - w)));
  }
  return { canary, stable, achievedWeight: Math.round((100 * canary) / (canary + stable)) };
}
