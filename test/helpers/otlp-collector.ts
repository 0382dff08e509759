/**
 * An OTLP/HTTP trace receiver inside the test: a real HTTP server on 127.0.0.1:0 that takes what the
 * real exporter sends (`POST /v1/traces`, OTLP JSON) and decodes the spans. Its behaviour can be set
 * to answer, answer 500, or hang (never answer) to stand for a collector that is failing or stuck.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';

export type SpanKindName = 'internal' | 'server' | 'client';

export type ReceivedSpan = {
  service: string;
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  name: string;
  kind: SpanKindName;
  attributes: Record<string, string | number | boolean>;
  /** 0 unset, 1 ok, 2 error (OTLP's status codes). */
  status: { code: number; message?: string };
};

export type CollectorBehaviour = 'ok' | 'fail' | 'hang';

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
type KeyValue = { key: string; value: AnyValue };
type OtlpSpan = {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: KeyValue[];
  status?: { code?: number; message?: string };
};
type ExportRequest = { resourceSpans: { resource: { attributes: KeyValue[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };

const KINDS: SpanKindName[] = ['internal', 'internal', 'server', 'client'];

export class Collector {
  behaviour: CollectorBehaviour = 'ok';
  readonly spans: ReceivedSpan[] = [];
  /** Export requests received, answered or not. */
  requests = 0;
  url = '';
  private readonly hanging = new Set<ServerResponse>();
  private waiters: { done: () => boolean; resolve: () => void }[] = [];
  private readonly server = createServer((req, res) => this.receive(req, res));

  async start(t: ExecutionContext): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1/traces`;
    t.teardown(() => {
      this.server.closeAllConnections();
      this.server.close();
    });
    return this;
  }

  /** The environment that points a sidecar's exporter here, exporting within milliseconds. */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: this.url, OTEL_BSP_SCHEDULE_DELAY: '10', OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '60000', ...extra };
  }

  /** Resolves once `count` spans (all of them when `match` is not given, else those matching) arrived. */
  async waitForSpans(count: number, match: (span: ReceivedSpan) => boolean = () => true): Promise<ReceivedSpan[]> {
    const found = () => this.spans.filter(match);
    if (found().length < count) await new Promise<void>((resolve) => this.waiters.push({ done: () => found().length >= count, resolve }));
    return found();
  }

  /** Resolves once `count` export requests arrived. */
  async waitForRequests(count: number): Promise<void> {
    if (this.requests < count) await new Promise<void>((resolve) => this.waiters.push({ done: () => this.requests >= count, resolve }));
  }

  /** Answer the requests held while hanging (with 200), and answer from now on. */
  release(): void {
    this.behaviour = 'ok';
    for (const res of this.hanging) res.end('{}');
    this.hanging.clear();
  }

  private receive(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      this.requests++;
      if (this.behaviour === 'hang') {
        this.hanging.add(res);
        this.wake();
        return;
      }
      if (this.behaviour === 'fail') {
        res.statusCode = 500;
        res.end('collector failure');
        this.wake();
        return;
      }
      this.decode(JSON.parse(Buffer.concat(chunks).toString()) as ExportRequest);
      res.setHeader('content-type', 'application/json');
      res.end('{}');
      this.wake();
    });
  }

  private decode(request: ExportRequest): void {
    for (const resourceSpans of request.resourceSpans) {
      const service = String(attributesOf(resourceSpans.resource.attributes)['service.name']);
      for (const scope of resourceSpans.scopeSpans) {
        for (const span of scope.spans) {
          this.spans.push({
            service,
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId ?? '',
            name: span.name,
            kind: KINDS[span.kind] ?? 'internal',
            attributes: attributesOf(span.attributes ?? []),
            status: { code: span.status?.code ?? 0, ...(span.status?.message ? { message: span.status.message } : {}) },
          });
        }
      }
    }
  }

  private wake(): void {
    this.waiters = this.waiters.filter((w) => (w.done() ? (w.resolve(), false) : true));
  }
}

function attributesOf(list: KeyValue[]): Record<string, string | number | boolean> {
  const attributes: Record<string, string | number | boolean> = {};
  for (const { key, value } of list) {
    if (value.stringValue !== undefined) attributes[key] = value.stringValue;
    else if (value.intValue !== undefined) attributes[key] = Number(value.intValue);
    else if (value.boolValue !== undefined) attributes[key] = value.boolValue;
    else if (value.doubleValue !== undefined) attributes[key] = value.doubleValue;
  }
  return attributes;
}

export function startCollector(t: ExecutionContext): Promise<Collector> {
  return new Collector().start(t);
}
