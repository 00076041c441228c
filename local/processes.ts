// Child processes of the local control plane: started with logs in files, tied to their parent's life when the
// cluster belongs to a test run, and always stopped by the pid we recorded when we started them.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';

export interface ComponentRecord {
  name: string;
  pid: number;
  bin: string;
  log: string;
  /**
   * The kernel's start time of the process (/proc/<pid>/stat): with the pid, its identity. It survives the exec
   * from the setpriv wrapper into the binary, and a recycled pid never has the same one.
   */
  startTime?: number | undefined;
}

export interface Started extends ComponentRecord {
  /** Rejects when the process exits, with the tail of its log; used to fail readiness waits fast. */
  exited: Promise<never>;
  child: ChildProcess;
}

export function tailOf(file: string, bytes = 3000): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.slice(-bytes);
  } catch {
    return '(no log)';
  }
}

/**
 * Starts a component. `persistent` components outlive this process (cluster:up); the others get SIGKILL from
 * the kernel when this process dies, however it dies, through setpriv's parent-death signal.
 */
export function startComponent(name: string, bin: string, args: string[], logDir: string, persistent: boolean, env?: Record<string, string>): Started {
  const log = join(logDir, `${name}.log`);
  const fd = openSync(log, 'a');
  const [cmd, argv] = persistent ? [bin, args] : ['setpriv', ['--pdeathsig', 'KILL', '--', bin, ...args]];
  const child = spawn(cmd, argv, { stdio: ['ignore', fd, fd], detached: persistent, ...(env ? { env: { ...process.env, ...env } } : {}) });
  closeSync(fd);
  if (persistent) child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${name} (${bin})`);
  const startTime = procStat(child.pid)?.startTime;
  const exited = new Promise<never>((_, reject) => {
    child.on('exit', (code, signal) => {
      reject(new Error(`${name} exited (${signal ?? `code ${code}`}) before it was ready; the end of ${log}:\n${tailOf(log)}`));
    });
    child.on('error', (err) => {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      const what = missing && !persistent ? `${bin} or setpriv (util-linux) is missing` : err.message;
      reject(new Error(`${name} could not start: ${what}`));
    });
  });
  exited.catch(() => {}); // observed by whoever races on it
  return { name, pid: child.pid, bin, log, startTime, exited, child };
}

function procStat(pid: number): { state: string; startTime: number } | undefined {
  try {
    // After the command name (which may hold spaces and parentheses): state is field 3, starttime field 22.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', startTime: Number(fields[19]) };
  } catch {
    return undefined;
  }
}

/** True only if the process we started is still alive (a zombie has exited) and the pid was not recycled. */
export function isOurProcess(rec: Pick<ComponentRecord, 'pid' | 'bin' | 'startTime'>): boolean {
  const stat = procStat(rec.pid);
  if (!stat || stat.state === 'Z') return false;
  if (rec.startTime !== undefined) return stat.startTime === rec.startTime;
  // A pid learnt without its start time: the command line must name the binary.
  try {
    return readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8').split('\0').includes(rec.bin);
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(rec: Pick<ComponentRecord, 'pid' | 'bin' | 'startTime'>, graceMs = 5000): Promise<void> {
  if (!isOurProcess(rec)) return;
  try {
    process.kill(rec.pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isOurProcess(rec)) {
    if (Date.now() > deadline) {
      try {
        process.kill(rec.pid, 'SIGKILL');
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
      if (Date.now() > deadline + 5000) throw new Error(`pid ${rec.pid} (${rec.bin}) survived SIGKILL`);
      continue;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Distinct free loopback ports; all are held until every one is chosen so they cannot collide. */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
      const addr = server.address();
      if (addr === null || typeof addr === 'string') throw new Error('no port');
      ports.push(addr.port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** Runs a script's main function; the process exits 0 when it resolves, or prints the error and exits 1. */
export function runScript(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
