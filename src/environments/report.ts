// What a build Job's pod reports in its termination message (image/environment-builder/build.py): the image it
// pushed, by digest, with its lock and SBOM; or why it failed. Parsed strictly: anything else is not trusted.
import { gunzipSync } from 'node:zlib';
import { z } from 'zod';

const digest = /^sha256:[a-f0-9]{64}$/;

const built = z.object({
  image: z.string().max(1024).regex(/^[^@\s]+@sha256:[a-f0-9]{64}$/),
  sbom: z.union([z.string().regex(digest), z.literal('')]),
  lock: z.string().max(4096).optional(),
  /** A lock too long for the message: gzipped, base64. */
  lockGz: z.string().max(4096).regex(/^[A-Za-z0-9+/=]*$/).optional(),
  python: z.string().max(32).optional(),
  reused: z.boolean().optional(),
});

const failed = z.object({ reason: z.string().regex(/^[A-Z][A-Za-z]{0,63}$/), message: z.string().max(4096) });

export type BuildReport = { ok: true; image: string; sbom?: string; lock: string[]; python?: string; reused: boolean } | { ok: false; reason: string; message: string };

/** The report in a termination message; a message that is not one (a crash's last log lines) is a failure. */
export function parseBuildReport(message: string | undefined, repository: string): BuildReport {
  const text = (message ?? '').trim();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'BuilderCrashed', message: text ? `the builder ended without a report; its last lines:\n${text}` : 'the builder ended without a report or output' };
  }
  const ok = built.safeParse(json);
  if (ok.success) {
    const r = ok.data;
    // The image must be where this environment pushes: a report naming another repository is not believed.
    if (!r.image.startsWith(`${repository}@`)) return { ok: false, reason: 'BuildReportInvalid', message: `the builder reported ${r.image}, which is not in ${repository}` };
    let lock = r.lock ?? '';
    if (r.lockGz) {
      try {
        // Bounded: a lock of a few thousand packages is well under a megabyte.
        lock = gunzipSync(Buffer.from(r.lockGz, 'base64'), { maxOutputLength: 1 << 20 }).toString('utf8');
      } catch (err) {
        return { ok: false, reason: 'BuildReportInvalid', message: `the builder's compressed lock does not decompress: ${err instanceof Error ? err.message : String(err)}` };
      }
    }
    return { ok: true, image: r.image, ...(r.sbom ? { sbom: r.sbom } : {}), lock: parseLock(lock), ...(r.python ? { python: r.python } : {}), reused: r.reused ?? false };
  }
  const bad = failed.safeParse(json);
  if (bad.success) return { ok: false, reason: bad.data.reason, message: bad.data.message };
  return { ok: false, reason: 'BuildReportInvalid', message: `the builder's report is not one Slipway reads: ${text.slice(0, 300)}` };
}

/**
 * `name==version … deb:name==version …` → sorted entries (Python packages by their PEP 503 names, Debian
 * packages prefixed deb:); anything else in it is dropped.
 */
export function parseLock(text: string): string[] {
  return text
    .split(/\s+/)
    .filter((e) => /^[a-z0-9]([a-z0-9-]*[a-z0-9])?==[A-Za-z0-9.+!_-]+$/.test(e) || /^deb:[a-z0-9][a-z0-9+.-]+==[A-Za-z0-9.+~:-]+$/.test(e))
    .sort();
}
