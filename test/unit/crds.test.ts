// crds/ is generated from the zod schemas: this fails when someone edits one without the other, and checks
// that the shipped examples parse with the same schemas the controller uses.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import yaml from 'js-yaml';
import { crdFiles } from '../../src/api/crd-files.ts';
import { modelDeployment } from '../../src/api/modeldeployment.ts';
import { openApiSchema } from '../../src/api/crd.ts';
import { z } from 'zod';

const root = join(import.meta.dirname, '..', '..');

test('crds/ matches what src/api generates (run npm run gen:crds after changing a schema)', () => {
  const generated = crdFiles();
  for (const dir of ['crds', 'charts/slipway/crds']) {
    const onDisk = readdirSync(join(root, dir)).filter((f) => f.endsWith('.yaml')).map((f) => `${dir}/${f}`).sort();
    assert.deepEqual(onDisk, [...generated.keys()].filter((k) => k.startsWith(`${dir}/`) && !k.slice(dir.length + 1).includes('/')).sort(), `the set of files in ${dir}`);
  }
  for (const [file, text] of generated) assert.equal(readFileSync(join(root, file), 'utf8'), text, `${file} is stale`);
});

test('every example ModelDeployment parses with the controller\'s schema', () => {
  const dir = join(root, 'examples');
  const docs = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => yaml.loadAll(readFileSync(join(dir, f), 'utf8')) as { kind?: string }[])
    .filter((d) => d?.kind === 'ModelDeployment');
  assert.ok(docs.length > 0);
  for (const doc of docs) modelDeployment.parse(doc);
});

test('int-or-string fields become x-kubernetes-int-or-string, not anyOf', () => {
  const schema = openApiSchema(z.object({ cpu: z.union([z.string(), z.number()]).meta({ 'x-kubernetes-int-or-string': true }) }));
  assert.deepEqual((schema.properties as Record<string, unknown>).cpu, { 'x-kubernetes-int-or-string': true });
});

test('strict objects lose additionalProperties:false and empty marker objects keep unknown fields', () => {
  const schema = openApiSchema(z.strictObject({ analysis: z.object({}) }));
  assert.equal(schema.additionalProperties, undefined);
  assert.deepEqual((schema.properties as Record<string, unknown>).analysis, { type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
});
