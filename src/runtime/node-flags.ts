// The V8 settings the controller runs with (the image's entrypoint, the benchmarks): a small young generation.
// V8 sizes the semi-spaces for throughput (up to 16 MiB each, on a machine with memory to spare); a controller's
// garbage is small and short-lived — parsed watch events and request bodies — and with 2 MiB semi-spaces its
// peak resident memory at 1000 ModelDeployments fell from 304 to 215 MiB for 1 s more CPU over the whole
// create-and-edit run (npm run bench:peers, bench/README.md).
export const NODE_FLAGS = ['--max-semi-space-size=2'];
