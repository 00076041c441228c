// ProjectEnvironment: a per-project environment image built from a package list and pinned by digest, or a
// prebuilt image. ModelDeployments reference it by name and serve its resolved image.
import { z } from 'zod';
import { cel, conditions, resourceSchema, readyColumn, ageColumn, type KindDefinition } from './common.ts';

const pinnedImage = z
  .string()
  .max(1024)
  .regex(/^[^@\s]+@sha256:[a-f0-9]{64}$/, 'must be pinned by digest: <repository>@sha256:<64 hex digits>');

/**
 * A requirement on a package of the index, PEP 508 without URLs or paths: `name[extras] specifiers ; marker`.
 * A direct reference (`name @ https://…`, a path) would make the lock depend on something outside the index.
 */
export const PIP_REQUIREMENT = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?\s*(\[\s*[A-Za-z0-9._-]+(\s*,\s*[A-Za-z0-9._-]+)*\s*\])?\s*((~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*(,\s*(~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*)*)?(;[^@]*)?$/;

const PIP_MESSAGE = 'must be a package of the index: name[extras] [specifiers] [; marker] (no URLs, paths or pip options)';

/** Where built images go: `host[:port]/path`, no tag or digest (the content hash is the tag). */
const repository = z
  .string()
  .min(3)
  .max(255)
  .regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)+$/, 'must be a repository with its registry host and no tag: host[:port]/path/name');

export const projectEnvironmentSpec = cel(
  z.object({
    image: pinnedImage.optional().meta({ description: 'A prebuilt image, pinned by digest; nothing is built.' }),
    baseImage: pinnedImage.optional().meta({
      description: 'The image the packages are installed on, pinned by digest, with Python 3 as python3 on its PATH: wheels are chosen for its Python and platform.',
    }),
    packages: z
      .object({
        pip: z
          .array(
            cel(z.string().min(1).max(512).regex(PIP_REQUIREMENT, PIP_MESSAGE), {
              // The pattern refuses it too; this says why in words.
              rule: `self.matches('${PIP_REQUIREMENT.source.replace(/\\/g, '\\\\')}')`,
              message: PIP_MESSAGE,
            }),
          )
          .max(500)
          .optional()
          .meta({ description: 'Python requirements (PEP 508), resolved to exact versions and wheel hashes before the build.' }),
        apt: z
          .array(z.string().min(1).max(256).regex(/^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$/, 'must be a Debian package name, optionally =version'))
          .max(500)
          .optional()
          .meta({ description: 'Debian packages of the base image\'s own release (name or name=version), with the dependencies the base lacks; unpacked, no maintainer scripts run.' }),
        r: z
          .array(z.string().min(1).max(128).regex(/^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]$/, 'must be a CRAN package name'))
          .max(500)
          .optional()
          .meta({ description: 'R packages, as the base image\'s Debian release builds them from CRAN (r-cran-<name>): the release is the CRAN snapshot. Needs R in the base image.' }),
      })
      .optional(),
    build: z
      .object({
        repository: repository.meta({ description: 'Where built images are pushed; each is tagged with its content hash.' }),
        pushSecret: z.string().min(1).max(253).optional().meta({ description: 'A kubernetes.io/dockerconfigjson Secret in this namespace with the registry\'s credentials.' }),
      })
      .optional(),
    historyLimit: z.number().int().min(1).max(50).optional().meta({ description: 'How many built images (with their locks) status.history keeps; 10 when unset.' }),
  }),
  {
    rule: 'has(self.image) != has(self.baseImage)',
    message: 'set exactly one of spec.image (prebuilt) or spec.baseImage (built from packages)',
  },
  {
    // The pattern refuses it too; this says why in words.
    rule: "!has(self.baseImage) || self.baseImage.matches('^[^@\\\\s]+@sha256:[a-f0-9]{64}$')",
    message: 'spec.baseImage must be pinned by digest (<repository>@sha256:<64 hex digits>): a tag can move, and the same spec must build the same image',
    fieldPath: '.baseImage',
  },
  {
    rule: '!has(self.baseImage) || has(self.build)',
    message: 'spec.build is required to build an environment from spec.baseImage',
    fieldPath: '.build',
  },
);

/** One built image: the content hash it was built for, the image by digest, and what it holds. */
const builtImage = z.object({
  hash: z.string(),
  image: z.string(),
  lock: z.array(z.string()).optional().meta({ description: 'Every package installed, as name==version.' }),
  sbom: z.string().optional().meta({ description: 'Digest of the SPDX SBOM pushed beside the image (its subject).' }),
  python: z.string().optional(),
  builtAt: z.string().optional(),
});

export const projectEnvironmentStatus = z.object({
  observedGeneration: z.number().int().optional(),
  contentHash: z.string().optional().meta({ description: 'The hash of everything that makes the image, for the current spec.' }),
  image: z.string().optional().meta({ description: 'The resolved image, pinned by digest, that ModelDeployments serve.' }),
  lock: z.array(z.string()).optional().meta({ description: 'The packages of status.image, as name==version.' }),
  sbom: z.string().optional(),
  phase: z.enum(['Pending', 'Building', 'Ready', 'Failed']).optional(),
  build: z
    .object({ hash: z.string(), job: z.string(), attempts: z.number().int().optional(), lastFailure: z.string().optional() })
    .optional()
    .meta({ description: 'The build in flight, when there is one.' }),
  history: z.array(builtImage).max(50).optional().meta({ description: 'Images built for this environment, newest first; a spec that hashes to one of them is served from it again without a build.' }),
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
    { name: 'Image', type: 'string', jsonPath: '.status.image', priority: 1 },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    readyColumn,
    ageColumn,
  ],
};
