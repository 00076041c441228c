// Structured logs (pino). JSON lines on stdout, one object per line, for log collectors; on a terminal, readable
// lines instead (`19:02:11.412 INFO  rolled back  namespace=ml name=churn`). SLIPWAY_LOG_FORMAT=json|text chooses
// explicitly; SLIPWAY_LOG_LEVEL sets the level.
import { pino, type Logger } from 'pino';

export type { Logger };

const LEVELS: Record<number, { name: string; colour: string }> = {
  10: { name: 'TRACE', colour: '90' },
  20: { name: 'DEBUG', colour: '36' },
  30: { name: 'INFO ', colour: '32' },
  40: { name: 'WARN ', colour: '33' },
  50: { name: 'ERROR', colour: '31' },
  60: { name: 'FATAL', colour: '35' },
};
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'component']);

const fieldValue = (v: unknown): string => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return typeof v === 'string' && /[\s"=]/.test(s) ? JSON.stringify(s) : s;
};

/** One JSON log line as a readable one: time, level, message, then the fields as key=value. */
export function formatLogLine(json: string, colour: boolean): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.trimEnd();
  }
  const level = LEVELS[Number(rec.level)] ?? { name: String(rec.level).padEnd(5), colour: '0' };
  const time = new Date(Number(rec.time)).toISOString().slice(11, 23);
  const paint = (code: string, s: string): string => (colour ? `\u001b[${code}m${s}\u001b[0m` : s);
  const fields = Object.entries(rec).filter(([k]) => !HIDDEN.has(k)).map(([k, v]) => `${paint('2', `${k}=`)}${fieldValue(v)}`);
  const component = typeof rec.component === 'string' && rec.component !== 'slipway' ? `${paint('2', `[${rec.component}]`)} ` : '';
  const msg = typeof rec.msg === 'string' ? rec.msg : '';
  return `${paint('2', time)} ${paint(level.colour, level.name)} ${component}${msg}${fields.length ? `  ${fields.join(' ')}` : ''}`;
}

function textDestination(out: NodeJS.WriteStream, colour: boolean): { write: (line: string) => void } {
  return { write: (line: string) => void out.write(`${formatLogLine(line, colour)}\n`) };
}

export function createLogger(name = 'slipway'): Logger {
  const format = process.env.SLIPWAY_LOG_FORMAT ?? (process.stdout.isTTY ? 'text' : 'json');
  const opts = { name, level: process.env.SLIPWAY_LOG_LEVEL ?? 'info', base: { component: name } };
  if (format !== 'text') return pino(opts);
  return pino(opts, textDestination(process.stdout, Boolean(process.stdout.isTTY) && !process.env.NO_COLOR));
}

export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
