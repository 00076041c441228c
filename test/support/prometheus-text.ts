// Reads a /metrics page (Prometheus text format) into series → value, and sums the series of a metric.

export type Samples = Map<string, number>;

export function parseMetrics(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

export async function scrape(url: string): Promise<Samples> {
  return parseMetrics(await (await fetch(url)).text());
}

/** The labels of one series (`name{a="1",b="2"}`) as a record. */
export function labelsOf(series: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of series.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1] as string] = m[2] as string;
  return out;
}

/**
 * The sum of every series of `metric` whose labels match `labels` (a substring such as `method="PATCH"`);
 * 0 when the metric has no series yet.
 */
export function total(samples: Samples, metric: string, labels: RegExp | string = ''): number {
  let sum = 0;
  for (const [series, value] of samples) {
    const name = series.split('{')[0];
    if (name !== metric) continue;
    if (typeof labels === 'string' ? series.includes(labels) : labels.test(series)) sum += value;
  }
  return sum;
}
