#!/usr/bin/env node
// The CLI is TypeScript, run by Node 24's type stripping.
import { main } from '../src/cli.ts';

process.exitCode = await main(process.argv.slice(2), process.env);
