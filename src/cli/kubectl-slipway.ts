#!/usr/bin/env node
// kubectl slipway: ModelDeployments at a glance, and the verbs of a rollout. Installed as `kubectl-slipway`
// (package.json bin), kubectl finds it on PATH.
//
//   kubectl slipway get [NAME] [-n NS | -A] [-o json|yaml]
//   kubectl slipway status NAME [-n NS] [-w] [-o json|yaml]
//   kubectl slipway history NAME [-n NS] [-o json|yaml]
//   kubectl slipway promote|abort|retry|pause|resume NAME [--full]
//   kubectl slipway undo NAME [--to-revision REV | --to-audit COMMIT [--audit-repo DIR]]
//
// A verb is a request written into the slipway.dev/request annotation (the spec stays as Git has it); the
// controller acts on it once and says what it did in status.lastRequest, which the plugin waits for and prints.
import { parseArgs } from 'node:util';
import yaml from 'js-yaml';
import { KubeClient } from '../kube/client.ts';
import { KubeApiError } from '../kube/errors.ts';
import { ListWatch } from '../kube/list-watch.ts';
import { Resources, type KubeObject } from '../kube/resources.ts';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { auditPath, parseDoc } from '../audit/document.ts';
import { ANNOTATION_REQUEST, requestBody, type Verb } from '../controllers/modeldeployment/requests.ts';
import type { ModelDeploymentStatus } from '../api/modeldeployment.ts';
import type { PodStatusView } from '../controllers/modeldeployment/pods.ts';
import { colour, plain, renderHistory, renderList, renderStatus, type EventView, type MdView, type RevisionView } from './render.ts';
import { VERSION } from '../version.ts';

const USAGE = `kubectl slipway: ModelDeployments at a glance

  kubectl slipway get [NAME] [-n NAMESPACE | -A] [-o json|yaml]   list, or one
  kubectl slipway status NAME [-n NAMESPACE] [-w] [-o json|yaml]  stable and canary, replicas, why pods are not ready, events
  kubectl slipway history NAME [-n NAMESPACE] [-o json|yaml]      the revisions kept, oldest first

  kubectl slipway promote NAME [--full]       past the current step (--full: past every step)
  kubectl slipway abort NAME                  all traffic back on stable, the canary removed
  kubectl slipway retry NAME                  start a stopped rollout again
  kubectl slipway pause NAME | resume NAME    hold the rollout where it is, or let it go on
  kubectl slipway undo NAME [--to-revision R] serve an earlier revision again (default: the one before stable)
        [--to-audit COMMIT [--audit-repo DIR]]   the revision that served at an audit commit (from a clone)

Flags: --kubeconfig FILE, --context NAME, -n/--namespace, -A/--all-namespaces, -o/--output, -w/--watch, --no-color,
       --timeout SECONDS (how long a verb waits for the controller's answer, default 30)
`;

const VERBS: readonly string[] = ['promote', 'abort', 'retry', 'pause', 'resume', 'undo'];

class UsageError extends Error {}

interface Args {
  command: string;
  name: string | undefined;
  namespace: string | undefined;
  all: boolean;
  output: 'text' | 'json' | 'yaml';
  watch: boolean;
  kubeconfig: string | undefined;
  context: string | undefined;
  color: boolean;
  full: boolean;
  toRevision: string | undefined;
  /** undo to the revision that served at this audit commit, read from a clone of the audit repository. */
  toAudit?: { commit: string; repo: string } | undefined;
  timeoutSeconds: number;
}

function parse(argv: string[]): Args {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      namespace: { type: 'string', short: 'n' },
      'all-namespaces': { type: 'boolean', short: 'A', default: false },
      output: { type: 'string', short: 'o' },
      watch: { type: 'boolean', short: 'w', default: false },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      'no-color': { type: 'boolean', default: false },
      full: { type: 'boolean', default: false },
      'to-revision': { type: 'string' },
      'to-audit': { type: 'string' },
      'audit-repo': { type: 'string', default: '.' },
      timeout: { type: 'string', default: '30' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command = 'help', name, ...rest] = positionals;
  if (values.help) return { command: 'help' } as Args;
  if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`);
  const output = values.output ?? 'text';
  if (!['text', 'json', 'yaml'].includes(output)) throw new UsageError(`--output must be json or yaml, not ${output}`);
  if ((command === 'status' || command === 'history' || VERBS.includes(command)) && !name) throw new UsageError(`kubectl slipway ${command} needs the name of a ModelDeployment`);
  if (values.full && command !== 'promote') throw new UsageError('--full goes with promote');
  if (values['to-revision'] && command !== 'undo') throw new UsageError('--to-revision goes with undo');
  if (values['to-audit'] && command !== 'undo') throw new UsageError('--to-audit goes with undo');
  if (values['to-audit'] && values['to-revision']) throw new UsageError('--to-revision or --to-audit, not both');
  const timeoutSeconds = Number(values.timeout);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 0) throw new UsageError(`--timeout must be a number of seconds, not ${values.timeout}`);
  return {
    command,
    name,
    namespace: values.namespace,
    all: values['all-namespaces'],
    output: output as Args['output'],
    watch: values.watch,
    kubeconfig: values.kubeconfig,
    context: values.context,
    color: !values['no-color'] && process.stdout.isTTY === true && !process.env.NO_COLOR,
    full: values.full,
    toRevision: values['to-revision'],
    toAudit: values['to-audit'] ? { commit: values['to-audit'], repo: values['audit-repo'] ?? '.' } : undefined,
    timeoutSeconds,
  };
}

const mdPath = (ns: string | undefined, name?: string): string => `/apis/slipway.dev/v1alpha1${ns ? `/namespaces/${encodeURIComponent(ns)}` : ''}/modeldeployments${name ? `/${encodeURIComponent(name)}` : ''}`;

async function list<T>(client: KubeClient, path: string, labelSelector?: string): Promise<T[]> {
  return (await client.request<{ items: T[] }>({ method: 'GET', path, ...(labelSelector ? { query: { labelSelector } } : {}) })).items;
}

function print(value: unknown, output: Args['output']): void {
  process.stdout.write(output === 'json' ? `${JSON.stringify(value, null, 2)}\n` : yaml.dump(value, { lineWidth: -1, noRefs: true }));
}

async function statusOf(client: KubeClient, ns: string, name: string): Promise<{ md: MdView; pods: PodStatusView[]; events: EventView[] }> {
  const md = await client.request<MdView>({ method: 'GET', path: mdPath(ns, name) });
  const [pods, events] = await Promise.all([
    list<PodStatusView>(client, `/api/v1/namespaces/${encodeURIComponent(ns)}/pods`, `slipway.dev/model-deployment=${name}`),
    list<EventView>(client, `/api/v1/namespaces/${encodeURIComponent(ns)}/events`),
  ]);
  const related = events.filter((e) => (e.involvedObject?.kind === 'ModelDeployment' && e.involvedObject.name === name) || (e.involvedObject?.kind === 'Pod' && pods.some((p) => p.metadata.name === e.involvedObject?.name)));
  return { md, pods, events: related };
}

async function run(args: Args): Promise<void> {
  if (args.command === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const client = await KubeClient.load({ ...(args.kubeconfig ? { kubeconfig: args.kubeconfig } : {}), ...(args.context ? { context: args.context } : {}), userAgent: `kubectl-slipway/${VERSION}` });
  const ns = args.namespace ?? client.namespace;
  args.namespace = ns; // for the error message
  const style = args.color ? colour : plain;
  const now = (): Date => new Date();
  try {
    switch (args.command) {
      case 'get': {
        if (args.name) {
          const md = await client.request<MdView>({ method: 'GET', path: mdPath(ns, args.name) });
          if (args.output !== 'text') return print(md, args.output);
          process.stdout.write(`${renderList([md], { now: now(), style, allNamespaces: false })}\n`);
          return;
        }
        const mds = await list<MdView>(client, mdPath(args.all ? undefined : ns));
        if (args.output !== 'text') return print({ apiVersion: 'v1', kind: 'List', items: mds }, args.output);
        process.stdout.write(`${renderList(mds, { now: now(), style, allNamespaces: args.all })}\n`);
        return;
      }
      case 'status': {
        const name = args.name ?? '';
        const show = async (): Promise<void> => {
          const s = await statusOf(client, ns, name);
          if (args.output !== 'text') return print(s.md.status ?? {}, args.output);
          const text = renderStatus(s.md, s, { now: now(), style });
          process.stdout.write(args.watch && process.stdout.isTTY ? `\u001b[2J\u001b[H${text}\n` : `${text}\n${args.watch ? '\n' : ''}`);
        };
        await show();
        if (!args.watch) return;
        // Live: every change of the ModelDeployment shows it again, until Ctrl-C.
        let last = '';
        const watch = new ListWatch<KubeObject>(client, Resources.ModelDeployment, {
          onList: () => undefined,
          onEvent: (_type, obj) => {
            if (obj.metadata.name !== name || obj.metadata.resourceVersion === last) return;
            last = obj.metadata.resourceVersion ?? '';
            void show().catch((err: unknown) => fail(err, args, ns));
          },
        }, { namespace: ns });
        watch.start();
        await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
        await watch.stop();
        return;
      }
      case 'history': {
        const name = args.name ?? '';
        const md = await client.request<MdView>({ method: 'GET', path: mdPath(ns, name) });
        const revisions = await list<RevisionView>(client, `/apis/apps/v1/namespaces/${encodeURIComponent(ns)}/controllerrevisions`, `slipway.dev/model-deployment=${name}`);
        if (args.output !== 'text') return print(revisions.map((r) => ({ revision: r.revision, name: r.metadata.labels?.['slipway.dev/revision'], modelVersion: r.data?.modelVersion, image: r.data?.image, created: r.metadata.creationTimestamp })), args.output);
        process.stdout.write(`${renderHistory(md, revisions, { now: now(), style })}\n`);
        return;
      }
      default:
        if (VERBS.includes(args.command)) return await request(client, args, ns);
        throw new UsageError(`unknown command ${args.command}`);
    }
  } finally {
    client.close();
  }
}

class Refused extends Error {}

/** The revision `undo` goes back to: one named (hash or history number), or the newest kept before stable. */
function undoTarget(md: MdView, wanted: string | undefined): string {
  const history = md.status?.history ?? [];
  if (wanted) {
    const found = history.find((h) => h.revision === wanted || String(h.number) === wanted);
    if (!found) throw new Refused(`revision ${wanted} is not in the history of ${md.metadata.name}: kubectl slipway history ${md.metadata.name} lists them`);
    return found.revision;
  }
  const stable = md.status?.stable?.revision;
  const stableNumber = history.find((h) => h.revision === stable)?.number ?? Infinity;
  const before = history.filter((h) => h.number < stableNumber).sort((a, b) => b.number - a.number)[0];
  if (!before) throw new Refused(`nothing to undo: ${md.metadata.name} keeps no revision older than the stable one`);
  return before.revision;
}

/**
 * The revision that served at an audit commit: `effective.stable.revision` of the object's file at that commit,
 * read from a clone of the audit repository (git show).
 */
function revisionAtAuditCommit(at: { commit: string; repo: string }, ns: string, name: string): string {
  const path = auditPath(ns, name);
  let text: string;
  try {
    text = execFileSync('git', ['show', `${at.commit}:${path}`], { cwd: at.repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const why = ((err as { stderr?: string }).stderr ?? '').trim().split('\n').pop() ?? '';
    throw new Refused(`the audit repository at ${at.repo} has no ${path} at ${at.commit}${why ? ` (${why})` : ''}`);
  }
  const revision = parseDoc(text)?.effective.stable?.revision;
  if (!revision) throw new Refused(`${name} had no stable revision at audit commit ${at.commit}`);
  return revision;
}

/** Writes the request, waits for the controller's answer, and prints it. */
async function request(client: KubeClient, args: Args, ns: string): Promise<void> {
  const name = args.name ?? '';
  const verb = (args.command === 'promote' && args.full ? 'promote-full' : args.command) as Verb;
  const md = await client.request<MdView>({ method: 'GET', path: mdPath(ns, name) });
  const revision = verb === 'undo' ? undoTarget(md, args.toAudit ? revisionAtAuditCommit(args.toAudit, ns, name) : args.toRevision) : undefined;
  const id = randomBytes(6).toString('hex');
  await client.request({
    method: 'PATCH',
    path: mdPath(ns, name),
    body: { metadata: { annotations: { [ANNOTATION_REQUEST]: requestBody(verb, id, revision) } } },
    contentType: 'application/merge-patch+json',
    query: { fieldManager: 'kubectl-slipway' },
  });
  // The answer comes as a change of the ModelDeployment: watched, not polled.
  const answer = await new Promise<NonNullable<ModelDeploymentStatus['lastRequest']> | undefined>((resolve, reject) => {
    const timer = setTimeout(() => done(undefined), args.timeoutSeconds * 1000);
    const seen = (obj: KubeObject): void => {
      const last = (obj as { status?: ModelDeploymentStatus }).status?.lastRequest;
      if (obj.metadata.name === name && last?.id === id) done(last);
    };
    const watch = new ListWatch<KubeObject>(client, Resources.ModelDeployment, { onList: (items) => items.forEach(seen), onEvent: (_type, obj) => seen(obj) }, { namespace: ns });
    const done = (a: NonNullable<ModelDeploymentStatus['lastRequest']> | undefined): void => {
      clearTimeout(timer);
      watch.stop().then(() => resolve(a), reject);
    };
    watch.start();
  });
  if (!answer) {
    throw new Refused(`the request is recorded (id ${id}) but the controller has not answered within ${args.timeoutSeconds} s: is it running? kubectl slipway status ${name} shows when it does`);
  }
  if (args.output !== 'text') print(answer, args.output);
  else process.stdout.write(`modeldeployment.slipway.dev/${name}: ${verb} ${answer.result === 'Accepted' ? 'accepted' : 'refused'} (requested by ${answer.by}): ${answer.message}\n`);
  if (answer.result !== 'Accepted') process.exitCode = 1;
}

function fail(err: unknown, args: Args | undefined, ns: string | undefined): never {
  let message: string;
  if (err instanceof UsageError) message = `${err.message}\n\n${USAGE}`;
  else if (err instanceof Refused) message = err.message;
  else if (err instanceof KubeApiError && err.code === 404) {
    // A 404 without a Status body is the API server not knowing the resource at all.
    const noCrd = /page not found/.test(err.statusMessage);
    message = noCrd || !args?.name
      ? `the API server does not know ModelDeployments: install Slipway's CRDs (kubectl apply --server-side -k crds/, or the Helm chart)`
      : `modeldeployment "${args.name}" not found in namespace "${ns ?? ''}"`;
  } else if (err instanceof KubeApiError && (err.code === 401 || err.code === 403)) message = `no permission: ${err.statusMessage}`;
  else {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code;
    message = cause && /^E[A-Z]+$/.test(cause) ? `cannot reach the API server: ${cause}` : err instanceof Error ? err.message : String(err);
  }
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

let args: Args | undefined;
try {
  args = parse(process.argv.slice(2));
  await run(args);
} catch (err) {
  fail(err, args, args?.namespace);
}
