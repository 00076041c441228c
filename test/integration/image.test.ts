// The controller's image, built here without a Docker daemon (image/build.ts): the same inputs give the same
// digest; its root filesystem, unpacked layer by layer, runs the controller (--version), git and ssh as the
// image's nonroot user under chroot; the SBOM lists every package in it; it stays within 80 MiB compressed.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildImage } from '../../image/build.ts';
import { readLock } from '../../image/debian.ts';
import { NODE_FLAGS, PROCESS_ENV } from '../../src/runtime/node-flags.ts';

const root = process.getuid?.() === 0;
const skip = !root && 'chroot needs root';

test('the controller image: reproducible, runs the controller, git and ssh as nonroot, an SBOM of every package, ≤ 80 MiB', { skip }, (t) => {
  const built = buildImage({ log: (l) => t.diagnostic(l) });
  const again = buildImage({ cache: false, log: (l) => t.diagnostic(l) });
  assert.equal(again.digest, built.digest, 'the same inputs give the same digest');
  t.diagnostic(`slipway/controller@${built.digest}: ${(built.size / 1048576).toFixed(1)} MiB compressed`);
  assert.ok(built.size <= 80 * 1048576, `${(built.size / 1048576).toFixed(1)} MiB`);

  const oci = join(built.dir, 'oci');
  const index = JSON.parse(readFileSync(join(oci, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  assert.equal(index.manifests[0]?.digest, built.digest);
  const manifest = JSON.parse(readFileSync(join(oci, 'blobs', 'sha256', built.digest.slice(7)), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
  const config = JSON.parse(readFileSync(join(oci, 'blobs', 'sha256', manifest.config.digest.slice(7)), 'utf8')) as { config: { User: string; Entrypoint: string[]; Env: string[] } };
  assert.equal(config.config.User, '65532:65532');
  assert.deepEqual(config.config.Entrypoint, ['/usr/local/bin/node', ...NODE_FLAGS, '/app/src/main.js'], 'the V8 flags the benchmarks measured');
  for (const [k, v] of Object.entries(PROCESS_ENV)) assert.ok(config.config.Env.includes(`${k}=${v}`), `${k}=${v} in the image's environment`);

  const rootfs = mkdtempSync(join(tmpdir(), 'slipway-rootfs-'));
  chmodSync(rootfs, 0o755); // as / is
  t.after(() => rmSync(rootfs, { recursive: true, force: true }));
  for (const l of manifest.layers) execFileSync('tar', ['-xzf', join(oci, 'blobs', 'sha256', l.digest.slice(7)), '-C', rootfs]);
  // What a container runtime provides: /dev/null.
  mkdirSync(join(rootfs, 'dev'), { recursive: true });
  execFileSync('mknod', ['-m', '666', join(rootfs, 'dev', 'null'), 'c', '1', '3']);
  const inImage = (args: string[]): string => execFileSync('chroot', ['--userspec=65532:65532', rootfs, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(inImage([...config.config.Entrypoint, '--version']).trim(), '0.1.0');
  assert.match(inImage(['/usr/bin/git', '--version']), /^git version 2\.39\./);
  assert.match(spawnSync('chroot', ['--userspec=65532:65532', rootfs, '/usr/bin/ssh', '-V'], { encoding: 'utf8' }).stderr, /^OpenSSH_9\./, 'ssh (it says its version on stderr)');
  inImage(['/usr/bin/git', 'init', '--bare', '--quiet', '/var/lib/slipway/audit']);
  assert.ok(existsSync(join(rootfs, 'var', 'lib', 'slipway', 'audit', 'HEAD')), 'the audit repository can be created as nonroot');
  assert.ok(statSync(join(rootfs, 'etc', 'ssl', 'certs', 'ca-certificates.crt')).size > 100_000, 'a CA bundle');
  assert.ok(!existsSync(join(rootfs, 'usr', 'bin', 'sh')) && !existsSync(join(rootfs, 'usr', 'bin', 'apt-get')), 'no shell, no package manager');

  // The SBOM: every Debian package of the lock, Node, and every npm package in the image.
  const sbom = JSON.parse(readFileSync(join(built.dir, 'sbom.spdx.json'), 'utf8')) as { spdxVersion: string; packages: { name: string; versionInfo: string }[] };
  assert.equal(sbom.spdxVersion, 'SPDX-2.3');
  const listed = new Set(sbom.packages.map((p) => `${p.name}@${p.versionInfo}`));
  for (const d of readLock()) assert.ok(listed.has(`${d.name}@${d.version}`), `${d.name} in the SBOM`);
  assert.ok(listed.has(`node@${execFileSync(join(rootfs, 'usr', 'local', 'bin', 'node'), ['--version'], { encoding: 'utf8' }).trim().slice(1)}`));
  const npm: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (name.startsWith('@')) walk(p);
      else if (existsSync(join(p, 'package.json'))) {
        const pkg = JSON.parse(readFileSync(join(p, 'package.json'), 'utf8')) as { name: string; version: string };
        npm.push(`${pkg.name}@${pkg.version}`);
        if (existsSync(join(p, 'node_modules'))) walk(join(p, 'node_modules'));
      }
    }
  };
  walk(join(rootfs, 'app', 'node_modules'));
  assert.ok(npm.length > 10);
  for (const p of npm) assert.ok(listed.has(p), `${p} in the SBOM`);
});
