// ProjectEnvironment: a per-project environment image built from a package list and pinned by digest, or a
// prebuilt image. ModelDeployments reference it by name and serve its resolved image.
import { z } from 'zod';
import { cel, conditions, resourceSchema, readyColumn, ageColumn, type KindDefinition } from './common.ts';

const pinnedImage = z
  .string()
  .max(1024)
  .regex(/^[^@\s]+@sha256:[a-f0-9]{64}$/, 'must be pinned by digest: <repository>@sha256:<64 hex digits>');

export const projectEnvironmentSpec = cel(
  z.object({
    image: pinnedImage.optional().meta({ description: 'A prebuilt image, pinned by digest; nothing is built.' }),
    baseImage: z.string().min(1).max(1024).optional(),
    packages: z
      .object({
        pip: z.array(z.string().min(1).max(512)).max(500).optional(),
        apt: z.array(z.string().min(1).max(256)).max(500).optional(),
      })
      .optional(),
    build: z
      .object({
        kaniko: z.object({
          image: z.string().min(1).max(1024),
          destination: z.string().min(1).max(1024),
          pushSecret: z.string().max(253).optional(),
        }),
      })
      .optional(),
  }),
  {
    rule: 'has(self.image) != has(self.baseImage)',
    message: 'set exactly one of spec.image (prebuilt) or spec.baseImage (built from packages)',
  },
  {
    rule: '!has(self.baseImage) || has(self.build)',
    message: 'spec.build is required to build an environment from spec.baseImage',
    fieldPath: '.build',
  },
);

export const projectEnvironmentStatus = z.object({
  observedGeneration: z.number().int().optional(),
  specHash: z.string().optional(),
  image: z.string().optional().meta({ description: 'The resolved image, pinned by digest, that ModelDeployments serve.' }),
  phase: z.enum(['Pending', 'Building', 'Ready', 'Failed']).optional(),
  conditions: conditions.optional(),
});

export const projectEnvironment = resourceSchema('ProjectEnvironment', projectEnvironmentSpec, projectEnvironmentStatus);
export type ProjectEnvironment = z.infer<typeof projectEnvironment>;

export const projectEnvironmentKind: KindDefinition = {
  kind: 'ProjectEnvironment',
  plural: 'projectenvironments',
  singular: 'projectenvironment',
  shortNames: ['penv'],
  categories: ['slipway', 'all'],
  description: 'A project environment image, built from a package list or prebuilt, pinned by digest.',
  spec: projectEnvironmentSpec,
  status: projectEnvironmentStatus,
  printerColumns: [
    { name: 'Image', type: 'string', jsonPath: '.status.image' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    readyColumn,
    ageColumn,
  ],
};
