// Slipway's version: what `--version` prints and the API clients send as their user agent. package.json and
// the chart's version and appVersion say the same (test/unit/version.test.ts).
export const VERSION = '0.1.0';
