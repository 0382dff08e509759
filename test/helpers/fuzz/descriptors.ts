/**
 * A process's open file descriptors from /proc (Linux), with TCP sockets resolved to their ports and
 * state, so that a leak report says which connections stayed open.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

const TCP_STATES: Record<string, string> = {
  '01': 'ESTABLISHED', '02': 'SYN_SENT', '03': 'SYN_RECV', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '06': 'TIME_WAIT',
  '07': 'CLOSE', '08': 'CLOSE_WAIT', '09': 'LAST_ACK', '0A': 'LISTEN', '0B': 'CLOSING',
};

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

/** One line per open descriptor: `fd 23 tcp 127.0.0.1:40211 -> :38817 ESTABLISHED`, or its link target. */
export function describeFds(pid: number, portNames: Record<number, string>): string[] {
  const sockets = new Map<string, string>();
  for (const table of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const row of text.split('\n').slice(1)) {
      const cols = row.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const port = (address: string) => {
        const n = Number.parseInt(address.split(':')[1] ?? '0', 16);
        return `${n}${portNames[n] ? `(${portNames[n]})` : ''}`;
      };
      sockets.set(cols[9]!, `tcp :${port(cols[1]!)} -> :${port(cols[2]!)} ${TCP_STATES[cols[3]!] ?? cols[3]}`);
    }
  }
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    let target = '?';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return `fd ${fd} closed while listing`;
    }
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    return `fd ${fd} ${inode === undefined ? target : (sockets.get(inode) ?? target)}`;
  });
}
