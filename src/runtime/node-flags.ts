// The V8 and C library settings the controller runs with (the image's entrypoint and environment, the benchmarks).
// - A small young generation: V8 sizes the semi-spaces for throughput (up to 16 MiB each, on a machine with
//   memory to spare); a controller's garbage is small and short-lived — parsed watch events and request bodies —
//   and with 2 MiB semi-spaces its peak resident memory at 1000 ModelDeployments fell from 304 to 215 MiB for 1 s
//   more CPU over the whole create-and-edit run (npm run bench:peers, bench/README.md).
// - A fixed old-generation growing factor of 1.5: left to itself V8 lets the heap grow to 2–3 times what is live
//   before a full collection (124 MB for 45 MB live in a cold start on 3000 ModelDeployments); at 1.5 the cold
//   start's peak RSS was 176–188 MiB instead of 202–215 (npm run bench:cold-start, bench/README.md).
export const NODE_FLAGS = ['--max-semi-space-size=2', '--heap-growing-percent=50'];

// - At most two malloc arenas: glibc gives each thread that contends for the allocator an arena of its own, up to
//   8 per core (512 on a 64-core node), and memory freed in one stays resident there. A controller allocates off
//   the V8 heap from its main thread and a few V8 and libuv helpers (buffers, TLS); two arenas are plenty.
export const PROCESS_ENV: Record<string, string> = { MALLOC_ARENA_MAX: '2' };
