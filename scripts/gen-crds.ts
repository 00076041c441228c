// Writes crds/*.yaml from the zod schemas in src/api (`npm run gen:crds`); a unit test fails when they drift.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crdFiles } from '../src/api/crd-files.ts';

const root = join(import.meta.dirname, '..');
for (const [file, text] of crdFiles()) {
  writeFileSync(join(root, file), text);
  console.log(`wrote ${file}`);
}
