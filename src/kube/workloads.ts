// The few fields of built-in workload objects that Slipway reads back. Objects stay raw JSON; these types only
// name what the planners look at.
import type { KubeObject } from './resources.ts';

export interface WorkloadCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
}

export interface Deployment extends KubeObject {
  spec?: { replicas?: number; template?: { spec?: { containers?: { image?: string }[] } } };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    readyReplicas?: number;
    availableReplicas?: number;
    unavailableReplicas?: number;
    conditions?: WorkloadCondition[];
  };
}

export type Service = KubeObject;
export type CronJob = KubeObject;
export type HorizontalPodAutoscaler = KubeObject;
