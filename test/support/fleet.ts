// A fleet repository as a GitOps tool syncs it, for the write-back tests: the ModelDeployment manifest a training
// pipeline commits (with a comment the write-back must keep, and a backtest Job metric whose image decides whether
// the version passes), and a working clone to commit it from.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const FLEET_PATH = 'clusters/prod/churn.yaml';

export function fleetManifest(o: { version: string; backtestImage: string; gitOps: string; namespace?: string; comment: string }): string {
  return `# ${o.comment}
apiVersion: slipway.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: churn
${o.namespace ? `  namespace: ${o.namespace}\n` : ''}spec:
  model:
    name: churn-xgb
    version: "${o.version}"   # set by the training pipeline
    uri: s3://models/churn/${o.version}/
    format: xgboost
  image: registry.example.com/mlserver:1.6.1
  replicas: 2
  gitOps: ${o.gitOps}
  rollout:
    scaleDownDelaySeconds: 0
    steps: [{setWeight: 50}, {analysis: {}}, {setWeight: 100}]
    analysis:
      interval: 2s
      count: 1
      metrics:
        - name: backtest
          job: {spec: {activeDeadlineSeconds: 3, template: {spec: {containers: [{name: b, image: "${o.backtestImage}"}]}}}}
`;
}

/** Commits `text` at `path` in the working clone `work` as the pipeline, pushes, and returns the commit. */
export function commitAsPipeline(work: string, path: string, text: string, message: string): string {
  const git = (args: string[]): string => execFileSync('git', args, { cwd: work, encoding: 'utf8' });
  mkdirSync(dirname(join(work, path)), { recursive: true });
  writeFileSync(join(work, path), text);
  git(['add', '-A']);
  git(['-c', 'user.name=pipeline', '-c', 'user.email=pipeline@example.com', 'commit', '--quiet', '-m', message]);
  git(['push', '--quiet', 'origin', 'main']);
  return git(['rev-parse', 'HEAD']).trim();
}
