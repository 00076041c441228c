// Structured logs (pino, JSON lines on stdout); SLIPWAY_LOG_LEVEL sets the level.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(name = 'slipway'): Logger {
  return pino({ name, level: process.env.SLIPWAY_LOG_LEVEL ?? 'info', base: { component: name } });
}

export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
