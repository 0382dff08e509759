/**
 * `meshlet breakers what-if`: replay an upstream's recorded outcomes with candidate breaker settings,
 * side by side with the settings in force; optionally draw it (SVG, HTML) and write the candidate
 * into a copy of the config. The history comes from a running sidecar (`--admin`, which replays it
 * itself: POST /breakers/NAME/what-if) or from access-log files (`--log`, replayed here, with the
 * settings in force read from `--config`). Loaded only for this command (cli.ts).
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { configPath, loadConfigFile } from '../config/load.ts';
import type { Env } from '../config/env.ts';
import { whatIf, type WhatIfReport } from '../resilience/what-if.ts';
import { candidateSettings, overlayFromSets, settingsInForce } from './candidate.ts';
import { historyFromLogs } from './log-history.ts';
import { formatReport } from './table.ts';
import { renderHtml, renderSvg } from './timeline-svg.ts';
import { writeCandidate } from './write-config.ts';

export const WHAT_IF_USAGE = `Usage: meshlet breakers what-if --upstream NAME --set KEY=VALUE ... [--log FILE ... | --admin URL]

Replays the upstream's recorded outcomes through its circuit breaker twice, with the settings in
force and with the candidate, and shows side by side what each would have done.

Options:
  --upstream NAME        the upstream (primary: the inbound breaker)
  --set KEY=VALUE        a candidate setting, relative to the upstream's policy, as in the config
                         file: circuitBreaker.errorThresholdPercentage=30, circuitBreaker.window=5s
  --admin URL            a running sidecar's admin listener, which replays its recent history
                         (default http://127.0.0.1:15000)
  --log FILE             rebuild the history from access-log files instead (repeatable); the
                         settings in force are read from --config
  --from TIME, --to TIME with --log: only outcomes in this span (ISO 8601, e.g. 2026-05-01T10:00:00Z)
  -c, --config FILE      the config file (default: $MESHLET_CONFIG, else config/meshlet.yaml)
  --json                 print the answer as JSON
  --svg FILE             write the timeline as a self-contained SVG
  --html FILE            write the timeline and the table as a self-contained HTML page
  --write FILE           write the config file with the candidate settings to FILE, validated
                         (then move it over the config and reload: SIGHUP or POST /reload)
`;

const DEFAULT_ADMIN = 'http://127.0.0.1:15000';

export async function breakersCommand(argv: string[], env: Env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        upstream: { type: 'string' },
        set: { type: 'string', multiple: true, default: [] },
        log: { type: 'string', multiple: true, default: [] },
        admin: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        config: { type: 'string', short: 'c' },
        json: { type: 'boolean', default: false },
        svg: { type: 'string' },
        html: { type: 'string' },
        write: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    return usage(`${(error as Error).message}`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(WHAT_IF_USAGE);
    return 0;
  }
  if (positionals[0] !== 'what-if' || positionals.length > 1) return usage(positionals[0] === undefined ? 'what-if is the one breakers command' : `unknown breakers command "${positionals.join(' ')}"`);
  if (values.upstream === undefined) return usage('--upstream NAME is required');
  if (values.log.length > 0 && values.admin !== undefined) return usage('--log and --admin are two sources of history: use one');
  const span = { from: time(values.from), to: time(values.to) };
  if (Number.isNaN(span.from) || Number.isNaN(span.to)) return usage('--from and --to take ISO 8601 times, e.g. 2026-05-01T10:00:00Z');
  const overlay = overlayFromSets(values.set);
  if (!overlay.ok) return problems(overlay.problems);
  const upstream = values.upstream;
  const file = configPath(values.config, env);
  const answer = values.log.length > 0
    ? await fromLogs(values.log, upstream, overlay.value, file, env, span)
    : await fromAdmin(values.admin ?? DEFAULT_ADMIN, upstream, overlay.value);
  if (!answer.ok) return problems(answer.problems);
  const report = answer.value;
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  if (values.svg !== undefined) await writeFile(values.svg, renderSvg(report));
  if (values.html !== undefined) await writeFile(values.html, renderHtml(report));
  if (values.write === undefined) return 0;
  const written = await writeCandidate(file, values.write, upstream, overlay.value, env);
  if (!written.ok) return problems(written.problems);
  process.stderr.write(`wrote ${values.write}: ${file} with ${written.value.join(', ')} set; validated. Put it in force: move it over ${file} (meshlet reloads a changed file), or SIGHUP / POST /reload\n`);
  return 0;
}

type Answer = { ok: true; value: WhatIfReport } | { ok: false; problems: string[] };

async function fromLogs(files: string[], upstream: string, overlay: Record<string, unknown>, file: string, env: Env, span: { from?: number; to?: number }): Promise<Answer> {
  const loaded = await loadConfigFile(file, env);
  if (!loaded.ok) return loaded;
  const inForce = settingsInForce(loaded.config, upstream);
  const candidate = candidateSettings(upstream, overlay, inForce);
  if (!candidate.ok) return candidate;
  let rebuilt;
  try {
    rebuilt = await historyFromLogs(files, upstream, span);
  } catch (error) {
    return { ok: false, problems: [`cannot read the log: ${(error as Error).message}`] };
  }
  if (rebuilt.history.ends.length === 0) {
    const known = ['primary', ...Object.keys(loaded.config.upstreams)].join(', ');
    return { ok: false, problems: [`no outcomes of "${upstream}" in ${files.join(', ')}${rebuilt.lines > 0 ? ' in that span' : ` (configured: ${known})`}`] };
  }
  const report = await whatIf(rebuilt.history, inForce, candidate.value);
  report.notes.push(`rebuilt from ${rebuilt.lines.toLocaleString('en')} access-log lines: times to the millisecond (events within one may replay in another order), and requests left out by sampleSuccesses are missing`);
  return { ok: true, value: report };
}

async function fromAdmin(admin: string, upstream: string, overlay: Record<string, unknown>): Promise<Answer> {
  // The same check the sidecar makes: said here even when it cannot be reached.
  const checked = candidateSettings(upstream, overlay, null);
  if (!checked.ok) return checked;
  const url = `${admin.replace(/\/$/, '')}/breakers/${encodeURIComponent(upstream)}/what-if`;
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', body: JSON.stringify(overlay), headers: { 'content-type': 'application/json' } });
  } catch (error) {
    return { ok: false, problems: [`cannot reach ${admin}: ${((error as Error).cause as Error | undefined)?.message ?? (error as Error).message}`] };
  }
  const body = (await res.json().catch(() => ({}))) as { problems?: string[]; error?: string };
  if (res.status === 200) return { ok: true, value: body as WhatIfReport };
  return { ok: false, problems: body.problems ?? [`${url}: ${res.status} ${body.error ?? ''}`.trim()] };
}

function time(text: string | undefined): number | undefined {
  return text === undefined ? undefined : Date.parse(text);
}

function usage(message: string): number {
  process.stderr.write(`${message}\n\n${WHAT_IF_USAGE}`);
  return 2;
}

function problems(lines: string[]): number {
  process.stderr.write(`${lines.join('\n')}\n`);
  return 1;
}
