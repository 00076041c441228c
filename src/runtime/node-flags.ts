// The V8 settings the controller runs with (the image's entrypoint, the benchmarks).
// - A small young generation: V8 sizes the semi-spaces for throughput (up to 16 MiB each, on a machine with
//   memory to spare); a controller's garbage is small and short-lived — parsed watch events and request bodies —
//   and with 2 MiB semi-spaces its peak resident memory at 1000 ModelDeployments fell from 304 to 215 MiB for 1 s
//   more CPU over the whole create-and-edit run (npm run bench:peers, bench/README.md).
// - A fixed old-generation growing factor of 1.5: left to itself V8 lets the heap grow to 2–3 times what is live
//   before a full collection (124 MB for 45 MB live in a cold start on 3000 ModelDeployments); at 1.5 the cold
//   start's peak RSS was 176–188 MiB instead of 202–215 (npm run bench:cold-start, bench/README.md).
export const NODE_FLAGS = ['--max-semi-space-size=2', '--heap-growing-percent=50'];
