// The two time formats the API server accepts: metav1.Time (RFC 3339, whole seconds) and metav1.MicroTime
// (exactly six fractional digits; three are rejected).

export const rfc3339 = (d: Date): string => `${d.toISOString().slice(0, 19)}Z`;

export const microTime = (d: Date): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
