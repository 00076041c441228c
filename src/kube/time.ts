// The two time formats the API server accepts: metav1.Time (RFC 3339, whole seconds) and metav1.MicroTime
// (exactly six fractional digits; three are rejected).

export const rfc3339 = (d: Date): string => `${d.toISOString().slice(0, 19)}Z`;

export const microTime = (d: Date): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

let lastMicros = 0;

/** Now as a metav1.MicroTime with its six digits all meaningful, strictly increasing within the process. */
export function microTimeNow(): string {
  const us = Math.max(Math.floor((performance.timeOrigin + performance.now()) * 1000), lastMicros + 1);
  lastMicros = us;
  return `${new Date(Math.floor(us / 1000)).toISOString().slice(0, 19)}.${String(us % 1_000_000).padStart(6, '0')}Z`;
}
