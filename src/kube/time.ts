// The two time formats the API server accepts: metav1.Time (RFC 3339, whole seconds) and metav1.MicroTime
// (exactly six fractional digits; three are rejected).

export const rfc3339 = (d: Date): string => `${d.toISOString().slice(0, 19)}Z`;

export const microTime = (d: Date): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

let lastMicros = 0;

/**
 * A metav1.MicroTime of `d` (the wall clock's milliseconds), strictly increasing within the process: a time in the
 * same millisecond as the one before is one microsecond after it, so that times taken in order sort in order.
 */
export function microTimeInOrder(d: Date): string {
  const us = Math.max(d.getTime() * 1000, lastMicros + 1);
  lastMicros = us;
  return `${rfc3339(new Date(Math.floor(us / 1000))).slice(0, 19)}.${String(us % 1_000_000).padStart(6, '0')}Z`;
}
