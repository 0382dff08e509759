/**
 * The JSON Schema of meshlet's YAML config, for editors (`npm run schema` writes
 * config/meshlet.schema.json; a test keeps it in step with the schema).
 */
import { z } from 'zod';
import { configSchema } from './schema.ts';

export function configJsonSchema(): object {
  return {
    ...z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }),
    $id: 'https://meshlet.dev/schema/meshlet.schema.json',
    title: 'meshlet sidecar configuration',
  };
}

if (import.meta.main) process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
