/**
 * The open tunnels of one listener (WebSocket upgrades): two sockets whose lives are tied together,
 * counted, bounded, and part of drain.
 *
 * - An error on either side destroys both; a close on one flushes and closes the other.
 * - A side that half-closes (FIN) starts a linger (`limits.tunnelHalfCloseTimeout`): a peer that
 *   never finishes its side would otherwise hold two sockets in CLOSE-WAIT / FIN-WAIT-2 forever.
 * - On shutdown, tunnels get until the drain deadline, then are ended with a WebSocket close frame
 *   1001 "going away" on each side that is at a frame boundary, or cut where that is not possible.
 */
import type { Socket } from 'node:net';
import type { GaugeSeries } from '../telemetry/series.ts';
import { FrameBoundaries, goingAwayFrame } from './websocket-frames.ts';

/** After meshlet's close frame, how long the peers get to answer it before the sockets are cut. */
const CLOSE_FRAME_GRACE_MS = 1_000;

export class Tunnel {
  readonly client: Socket;
  readonly upstream: Socket;
  readonly gauge: GaugeSeries;
  /** Frame boundaries of each direction, for a clean close frame; null when not WebSocket. */
  readonly toClient: FrameBoundaries | null;
  readonly toUpstream: FrameBoundaries | null;
  linger: NodeJS.Timeout | null = null;
  closed = false;

  constructor(client: Socket, upstream: Socket, gauge: GaugeSeries, websocket: boolean) {
    this.client = client;
    this.upstream = upstream;
    this.gauge = gauge;
    this.toClient = websocket ? new FrameBoundaries() : null;
    this.toUpstream = websocket ? new FrameBoundaries() : null;
  }

  destroy(): void {
    this.client.destroy();
    this.upstream.destroy();
  }
}

export class Tunnels {
  private readonly open = new Set<Tunnel>();
  private readonly halfCloseTimeoutMs: number;
  private readonly max: number;
  private emptied: PromiseWithResolvers<void> | null = null;

  constructor(options: { max: number; halfCloseTimeoutMs: number }) {
    this.max = options.max;
    this.halfCloseTimeoutMs = options.halfCloseTimeoutMs;
  }

  get size(): number {
    return this.open.size;
  }

  /** Whether another tunnel may open (`limits.maxTunnels`). */
  get full(): boolean {
    return this.open.size >= this.max;
  }

  /** Tie `client` and `upstream` together as one tunnel until either ends. */
  add(client: Socket, upstream: Socket, gauge: GaugeSeries, websocket: boolean): Tunnel {
    const tunnel = new Tunnel(client, upstream, gauge, websocket);
    this.open.add(tunnel);
    gauge.inc();
    const destroyBoth = () => tunnel.destroy();
    client.on('error', destroyBoth);
    upstream.on('error', destroyBoth);
    client.once('close', () => {
      upstream.destroySoon();
      this.closed(tunnel);
    });
    upstream.once('close', () => {
      client.destroySoon();
      this.closed(tunnel);
    });
    const lingerAfterFin = () => {
      if (tunnel.linger === null && !tunnel.closed && this.halfCloseTimeoutMs > 0) tunnel.linger = setTimeout(destroyBoth, this.halfCloseTimeoutMs);
    };
    client.once('end', lingerAfterFin);
    upstream.once('end', lingerAfterFin);
    if (tunnel.toClient !== null) upstream.on('data', (chunk: Buffer) => tunnel.toClient!.see(chunk));
    if (tunnel.toUpstream !== null) client.on('data', (chunk: Buffer) => tunnel.toUpstream!.see(chunk));
    return tunnel;
  }

  /** Resolves when no tunnel is open, or when `signal` aborts. */
  async whenEmpty(signal: AbortSignal): Promise<void> {
    if (this.open.size === 0 || signal.aborted) return;
    this.emptied ??= Promise.withResolvers<void>();
    const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    await Promise.race([this.emptied.promise, aborted]);
  }

  /**
   * End every tunnel: a close frame 1001 to each side at a frame boundary (the relay stops first, so
   * no frame is cut by it), then the sockets are cut if the peers have not closed within a grace.
   */
  goAway(): void {
    for (const tunnel of this.open) {
      tunnel.upstream.unpipe(tunnel.client);
      tunnel.client.unpipe(tunnel.upstream);
      endWith(tunnel.client, tunnel.toClient, false);
      endWith(tunnel.upstream, tunnel.toUpstream, true);
      setTimeout(() => tunnel.destroy(), CLOSE_FRAME_GRACE_MS).unref();
    }
  }

  /** Cut every tunnel at once. */
  destroyAll(): void {
    for (const tunnel of this.open) tunnel.destroy();
  }

  private closed(tunnel: Tunnel): void {
    if (tunnel.closed) return;
    tunnel.closed = true;
    if (tunnel.linger !== null) clearTimeout(tunnel.linger);
    this.open.delete(tunnel);
    tunnel.gauge.dec();
    if (this.open.size === 0 && this.emptied !== null) {
      this.emptied.resolve();
      this.emptied = null;
    }
  }
}

/** End `socket` with a close frame when `frames` says the stream is at a frame boundary, else cut it. */
function endWith(socket: Socket, frames: FrameBoundaries | null, masked: boolean): void {
  if (frames !== null && frames.atBoundary && socket.writable) socket.end(goingAwayFrame(masked));
  else socket.destroy();
}
