/**
 * The embedded registry for one machine (`registry.backend: sqlite`), like Dapr's SQLite name
 * resolver: one database file shared by the sidecars on the host. Each instance is a row with a lease
 * (`expires_at`, wall-clock milliseconds: every sidecar on the host shares the clock) that its sidecar
 * renews every ttl/3; readers ignore expired rows, and renewals delete them.
 *
 * Discovery polls, cheaply: a `generation` counter is bumped by every join, change and leave (not by
 * renewals), so a poll reads one integer and re-reads the rows only when it moved or when the earliest
 * lease it knows of has passed (a sidecar killed with -9 leaves by expiry, without a write).
 *
 * node:sqlite is synchronous. Every call here runs on a timer, never on the request path, and is short:
 * WAL lets readers run beside the one writer, and a writer holds the lock for microseconds, so
 * `busy_timeout` (the longest this blocks the event loop behind another sidecar's write) stays small.
 * A renewal every few seconds and a poll every second cost tens of microseconds each (docs/registry.md).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { parseInstance, type Instance, type Registry, type RegistryListener } from './registry.ts';

export type SqliteRegistryOptions = {
  path: string;
  ttlMs: number;
  /** How often discovery looks for changes (`registry.sqlite.pollInterval`). */
  pollMs: number;
};

/** The longest a statement waits for another sidecar's write lock (blocking the event loop). */
const BUSY_TIMEOUT_MS = 200;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS instances (id TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS generation (one INTEGER PRIMARY KEY CHECK (one = 1), value INTEGER NOT NULL);
  INSERT OR IGNORE INTO generation VALUES (1, 0);
`;

type Statements = {
  generation: StatementSync;
  live: StatementSync;
  renew: StatementSync;
  upsert: StatementSync;
  remove: StatementSync;
  bump: StatementSync;
  clean: StatementSync;
};

export class SqliteRegistry implements Registry {
  readonly backend = 'sqlite' as const;
  private readonly options: SqliteRegistryOptions;
  private readonly listener: RegistryListener;
  private db: DatabaseSync | null = null;
  private statements: Statements | null = null;
  private own: { id: string; body: string } | null = null;
  private lastRenewal = 0;
  private leaseHeld = false;
  private renewTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private seenGeneration = -1;
  /** When the earliest lease read at the last re-read ends: then a -9'd sidecar may have left. */
  private nextExpiry = 0;
  private reachable: boolean | null = null;
  private closed = false;

  constructor(options: SqliteRegistryOptions, listener: RegistryListener) {
    this.options = options;
    this.listener = listener;
  }

  watch(): void {
    this.poll();
    this.pollTimer = setInterval(() => this.poll(), this.options.pollMs);
    this.pollTimer.unref();
  }

  register(instance: Instance): Promise<void> {
    this.own = { id: instance.id, body: JSON.stringify(instance) };
    this.renewTimer ??= setInterval(() => this.renew(), Math.max(1, Math.floor(this.options.ttlMs / 3)));
    this.renewTimer.unref();
    try {
      this.publish(Date.now());
      this.setLease(true, null);
      this.poll(); // our own row, and whatever else changed, without waiting for the next poll
      return Promise.resolve();
    } catch (error) {
      // The renewal timer keeps trying; the caller learns that it is not registered yet.
      return Promise.reject(error as Error);
    }
  }

  deregister(): Promise<void> {
    if (this.renewTimer !== null) clearInterval(this.renewTimer);
    this.renewTimer = null;
    const own = this.own;
    this.own = null;
    this.setLease(false, null);
    if (own === null) return Promise.resolve();
    try {
      this.transaction((s) => {
        s.remove.run(own.id);
        s.bump.run();
      });
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  close(): Promise<void> {
    if (this.renewTimer !== null) clearInterval(this.renewTimer);
    if (this.pollTimer !== null) clearInterval(this.pollTimer);
    this.renewTimer = this.pollTimer = null;
    this.closed = true;
    this.db?.close();
    this.db = this.statements = null;
    return Promise.resolve();
  }

  /** Insert or replace our row with a fresh lease, and tell the readers. */
  private publish(now: number): void {
    const own = this.own!;
    this.transaction((s) => {
      s.upsert.run(own.id, own.body, now + this.options.ttlMs);
      s.bump.run();
    });
    this.lastRenewal = now;
  }

  /** Extend our lease; a row that expired meanwhile (a stalled process) is published again. */
  private renew(): void {
    if (this.own === null) return;
    const now = Date.now();
    try {
      const s = this.prepared();
      const { changes } = s.renew.run(now + this.options.ttlMs, this.own.id, now);
      if (changes === 0) {
        this.setLease(false, 'the lease had expired before it was renewed');
        this.publish(now);
      } else {
        this.lastRenewal = now;
      }
      s.clean.run(now);
      this.setLease(true, null);
    } catch (error) {
      if (now - this.lastRenewal > this.options.ttlMs) this.setLease(false, `cannot renew: ${(error as Error).message}`);
    }
  }

  private poll(): void {
    try {
      const s = this.prepared();
      const now = Date.now();
      const generation = Number((s.generation.get() as { value: number }).value);
      if (generation !== this.seenGeneration || now >= this.nextExpiry) {
        const rows = s.live.all(now) as { body: string; expires_at: number }[];
        const instances: Instance[] = [];
        let nextExpiry = Infinity;
        for (const row of rows) {
          const instance = parseInstance(row.body);
          if (instance !== null) instances.push(instance);
          if (row.expires_at < nextExpiry) nextExpiry = row.expires_at;
        }
        this.seenGeneration = generation;
        this.nextExpiry = nextExpiry;
        this.listener.snapshot(instances);
      }
      this.setReachable(true, null);
    } catch (error) {
      this.setReachable(false, `${this.options.path}: ${(error as Error).message}`);
    }
  }

  private transaction(body: (s: Statements) => void): void {
    const s = this.prepared();
    const db = this.db!;
    // IMMEDIATE takes the write lock at once, so a busy database fails here (and waits busy_timeout)
    // rather than halfway through.
    db.exec('BEGIN IMMEDIATE');
    try {
      body(s);
      db.exec('COMMIT');
    } catch (error) {
      db.exec('ROLLBACK');
      throw error;
    }
  }

  /** The open database, opened (and the file and tables made) on first use or after a failure. */
  private prepared(): Statements {
    if (this.statements !== null) return this.statements;
    if (this.closed) throw new Error('the registry is closed');
    mkdirSync(dirname(this.options.path), { recursive: true });
    const db = new DatabaseSync(this.options.path, { timeout: BUSY_TIMEOUT_MS });
    try {
      // WAL: readers never block the writer nor each other. synchronous=NORMAL: a lease registry
      // rebuilds itself within a TTL, so a power cut losing the last writes costs nothing.
      db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;');
      db.exec(SCHEMA);
      this.statements = {
        generation: db.prepare('SELECT value FROM generation WHERE one = 1'),
        live: db.prepare('SELECT body, expires_at FROM instances WHERE expires_at > ?'),
        renew: db.prepare('UPDATE instances SET expires_at = ? WHERE id = ? AND expires_at > ?'),
        upsert: db.prepare('INSERT OR REPLACE INTO instances (id, body, expires_at) VALUES (?, ?, ?)'),
        remove: db.prepare('DELETE FROM instances WHERE id = ?'),
        bump: db.prepare('UPDATE generation SET value = value + 1 WHERE one = 1'),
        // Expired rows are ignored by every reader already; deleting them keeps the file small.
        clean: db.prepare('DELETE FROM instances WHERE expires_at <= ?'),
      };
    } catch (error) {
      db.close();
      throw error;
    }
    this.db = db;
    return this.statements;
  }

  private setReachable(reachable: boolean, reason: string | null): void {
    if (this.reachable === reachable) return;
    this.reachable = reachable;
    this.listener.reachability(reachable, reason);
  }

  private setLease(held: boolean, reason: string | null): void {
    if (this.leaseHeld === held) return;
    this.leaseHeld = held;
    this.listener.lease(held, reason);
  }
}
