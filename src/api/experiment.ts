// Experiment: compare model versions on live traffic (A/B test or bandit). The controller for it comes later;
// the API is defined now so the CRD set is complete and validated at admission.
import { z } from 'zod';
import { cel, conditions, duration, name253, name63, resourceSchema, readyColumn, ageColumn, type KindDefinition } from './common.ts';

const variant = z.object({ name: name63, modelDeploymentRef: name253 });

const strategy = cel(
  z.object({
    abTest: z
      .object({
        split: z.array(z.number().int().min(0).max(100)).min(2).max(10).optional(),
        alpha: z.number().gt(0).lt(1).default(0.05),
        sequential: z.boolean().default(true),
      })
      .optional(),
    bandit: z
      .object({
        algorithm: z.enum(['thompson', 'ucb1', 'epsilonGreedy']).default('thompson'),
        updateInterval: duration.default('5m'),
        minWeight: z.number().int().min(0).max(50).default(5),
      })
      .optional(),
    shadow: z.object({}).optional(),
  }),
  {
    rule: '[has(self.abTest), has(self.bandit), has(self.shadow)].filter(x, x).size() == 1',
    message: 'strategy takes exactly one of abTest, bandit or shadow',
  },
  {
    rule: '!has(self.abTest) || !has(self.abTest.split) || self.abTest.split.sum() == 100',
    message: 'strategy.abTest.split must add up to 100',
  },
);

export const experimentSpec = cel(
  z.object({
    variants: z.array(variant).min(2).max(10).meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] }),
    strategy,
    routing: z
      .object({
        gatewayAPI: z.object({ httpRoute: name253 }).optional(),
        sticky: z.object({ header: z.string().min(1).max(256) }).optional(),
      })
      .optional(),
    objective: z.object({
      metric: name63,
      kind: z.enum(['binomial', 'continuous']),
      goal: z.enum(['maximize', 'minimize']).default('maximize'),
      successes: z.string().max(8192).optional(),
      trials: z.string().max(8192).optional(),
      query: z.string().max(8192).optional(),
    }),
    guardrails: z
      .array(z.object({ name: name63, query: z.string().max(8192).optional(), min: z.number().optional(), max: z.number().optional() }))
      .max(20)
      .optional(),
    stopping: z
      .object({ minSamplesPerVariant: z.number().int().min(1).default(1000), maxDuration: z.string().max(32).default('14d') })
      .prefault({}),
    onConclusion: z
      .object({ promote: z.enum(['winner', 'none']).default('none'), requireApproval: z.boolean().default(true) })
      .prefault({}),
  }),
  {
    rule: '!has(self.strategy.abTest) || !has(self.strategy.abTest.split) || self.strategy.abTest.split.size() == self.variants.size()',
    message: 'strategy.abTest.split needs one weight per variant',
  },
);

export const experimentStatus = z.object({
  observedGeneration: z.number().int().optional(),
  phase: z.enum(['Pending', 'Running', 'Concluded', 'Stopped', 'Failed']).optional(),
  variants: z
    .array(
      z.object({
        name: z.string(),
        weight: z.number().optional(),
        samples: z.number().optional(),
        estimate: z.number().optional(),
        interval: z.array(z.number()).max(2).optional(),
        probabilityBest: z.number().optional(),
      }),
    )
    .optional(),
  winner: z.string().optional(),
  conditions: conditions.optional(),
});

export const experiment = resourceSchema('Experiment', experimentSpec, experimentStatus);
export type Experiment = z.infer<typeof experiment>;

export const experimentKind: KindDefinition = {
  kind: 'Experiment',
  plural: 'experiments',
  singular: 'experiment',
  shortNames: ['exp'],
  categories: ['slipway', 'all'],
  description: 'An A/B test, bandit or shadow comparison between model versions on live traffic.',
  spec: experimentSpec,
  status: experimentStatus,
  printerColumns: [
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'Winner', type: 'string', jsonPath: '.status.winner' },
    readyColumn,
    ageColumn,
  ],
};
