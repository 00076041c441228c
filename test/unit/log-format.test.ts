import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatLogLine } from '../../src/runtime/log.ts';

test('a JSON log line reads as time, level, message and key=value fields on a terminal', () => {
  const line = JSON.stringify({ level: 40, time: Date.UTC(2026, 10, 26, 19, 2, 11, 412), pid: 1, hostname: 'h', component: 'notifier', msg: 'notification not sent', namespace: 'ml', why: 'answered 503', attempts: 5 });
  assert.equal(formatLogLine(line, false), '19:02:11.412 WARN  [notifier] notification not sent  namespace=ml why="answered 503" attempts=5');
  assert.ok(formatLogLine(line, true).includes('\u001b[33mWARN \u001b[0m'));
  assert.equal(formatLogLine('not json\n', false), 'not json');
});
