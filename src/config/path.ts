/** Where the config file is: a module of its own, so that the serving process need not load the loader. */
export const DEFAULT_CONFIG_PATH = 'config/meshlet.yaml';

/** The config file to use: the flag, else `MESHLET_CONFIG`, else `config/meshlet.yaml`. */
export function configPath(flag: string | undefined, env: Record<string, string | undefined>): string {
  return flag ?? env.MESHLET_CONFIG ?? DEFAULT_CONFIG_PATH;
}
