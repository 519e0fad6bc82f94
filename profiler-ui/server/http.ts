/**
 * The profiler's HTTP routes (see profiler-ui/protocol.md): the page and its static files, the compiled
 * wire module, vendored chart libraries, and the run API. Everything sits behind the token.
 */
import fs from 'node:fs';
import express, { type NextFunction, type Request, type Response } from 'express';
import { InputError } from '../../src/errors.js';
import { parseTrace, serializeEvent } from '../../src/trace/jsonl-sink.js';
import { encodeBatch } from '../../src/trace/wire.js';
import type { HostCheck, TokenAuth } from './auth.js';
import type { ProfilerPaths } from './paths.js';
import { parseRunName } from './run-names.js';
import type { RunStore } from './run-store.js';

export interface HttpDeps {
  auth: TokenAuth;
  hosts: HostCheck;
  store: RunStore;
  paths: ProfilerPaths;
  /** Numbers for /api/health. */
  health: () => Record<string, number>;
  /** Largest accepted POST /api/traces body (default 64 MiB). */
  maxUploadBytes?: number;
}

export function createApp(deps: HttpDeps): express.Express {
  const { auth, store, paths } = deps;
  const app = express();
  app.disable('x-powered-by');

  app.use((req, res, next) => {
    if (!deps.hosts.allows(req)) {
      res.status(403).json({ error: deps.hosts.refusal(req) });
      return;
    }
    const source = auth.check(req);
    if (!source) {
      res.status(401).json({
        error: 'missing or wrong profiler token: open the URL that `sparsevila profile` printed (it ends in ?token=…), or send Authorization: Bearer <token>',
      });
      return;
    }
    // The page was opened from the printed URL: let its own later requests and sockets in by cookie.
    if (source === 'query') res.setHeader('Set-Cookie', auth.setCookieHeader());
    next();
  });

  app.get('/api/health', (_req, res) => {
    res.json({ ok: true, ...deps.health() });
  });

  app.get('/api/runs', (_req, res) => {
    res.json(store.summaries());
  });

  app.get('/api/runs/:run/events', (req, res) => {
    const events = store.events(String(req.params.run));
    if (!events) return void notFound(res, String(req.params.run));
    res.type('application/json').send(encodeBatch(events));
  });

  app.get('/api/runs/:run/trace.jsonl', (req, res) => {
    const id = String(req.params.run);
    const events = store.events(id);
    if (!events) return void notFound(res, id);
    res.type('application/x-ndjson');
    res.setHeader('Content-Disposition', `attachment; filename="${id.replace(/[^A-Za-z0-9._-]/g, '_')}.jsonl"`);
    res.send(events.map((e) => serializeEvent(e) + '\n').join(''));
  });

  app.put('/api/runs/:run/name', express.json({ limit: 4096, type: () => true }), (req, res) => {
    const id = String(req.params.run);
    const name = parseRunName(req.body); // throws InputError: 400 below
    const summary = store.rename(id, name);
    if (!summary) return void notFound(res, id);
    res.json(summary);
  });

  app.post('/api/traces', express.text({ type: () => true, limit: deps.maxUploadBytes ?? 64 * 1024 * 1024 }), (req, res) => {
    if (typeof req.body !== 'string' || !req.body.trim()) {
      res.status(400).json({ error: 'POST /api/traces expects a JSONL trace as the request body (one event per line, as JsonlSink writes)' });
      return;
    }
    const events = parseTrace(req.body, '<upload>'); // throws InputError naming the line: 400 below
    if (!events.length) {
      res.status(400).json({ error: 'the uploaded trace has no events' });
      return;
    }
    const live = store.liveRuns(new Set(events.map((e) => e.run)));
    if (live.length) {
      res.status(409).json({ error: `run ${JSON.stringify(live[0])} is live (a producer is streaming it): upload it under another run id` });
      return;
    }
    res.json({ runs: store.load(events, { persist: true }) });
  });

  app.use('/lib', express.static(paths.lib));
  app.get('/errors.js', (_req, res) => sendFile(res, paths.errors));
  app.get('/vendor/d3.js', (_req, res) => sendFile(res, paths.d3));
  app.get('/vendor/plotly.js', (_req, res) => sendFile(res, paths.plotly));
  // The page's own files. index.html is written by the UI; say so plainly if it is missing.
  app.use(express.static(paths.web, { index: 'index.html' }));
  app.get('/', (_req, res) => {
    res.status(503).type('text/plain').send(`The profiler page is missing: expected ${paths.web}/index.html`);
  });

  app.use((_req, res) => {
    res.status(404).json({ error: 'no such route (see profiler-ui/protocol.md)' });
  });

  // Express 5 forwards rejected promises and thrown errors here.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err as Error & { status?: number; type?: string };
    if (err instanceof InputError) {
      res.status(400).json({ error: err.message });
    } else if (e.type === 'entity.too.large') {
      res.status(413).json({ error: `trace upload too large (limit ${deps.maxUploadBytes ?? 64 * 1024 * 1024} bytes)` });
    } else if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      res.status(e.status).json({ error: e.message });
    } else {
      res.status(500).json({ error: `profiler server error: ${e.message}` });
    }
  });

  return app;
}

function notFound(res: Response, run: string): void {
  res.status(404).json({ error: `no run ${JSON.stringify(run)} in memory (GET /api/runs lists them)` });
}

function sendFile(res: Response, file: string): void {
  if (!fs.existsSync(file)) {
    res.status(404).json({ error: `not installed: ${file} (run npm install)` });
    return;
  }
  res.type('application/javascript').sendFile(file);
}
