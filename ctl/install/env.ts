/**
 * EnvironmentFile= text for a role, generated from the role's config spec (daemon/config.ts),
 * so the file lists exactly the MESHD_* variables that role reads: the ones the install sets,
 * then every other one commented out with its default.
 */
import { ENV_PREFIX, type Spec, showDuration } from '../../daemon/config.js';
import { installError } from './files.js';

/** How systemd reads a value: plain when it is safe, else double-quoted with escapes. */
export function envValue(variable: string, value: string): string {
  if (/[\n\r\0]/.test(value)) {
    throw installError(`${variable}: the value contains a line break`, 'give a one-line value');
  }
  if (/^[A-Za-z0-9_.,:/@+=%-]*$/.test(value)) return value;
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function showDefault(key: string, value: unknown): string {
  if (value === undefined) return '';
  if (typeof value === 'number' && key.endsWith('Ms')) return showDuration(value);
  return String(value);
}

export function envFileText<C>(
  header: readonly string[],
  spec: Spec<C>,
  values: Partial<Record<keyof C, string>>,
): string {
  const set: string[] = [];
  const rest: string[] = [];
  for (const key of Object.keys(spec) as (keyof C & string)[]) {
    const field = spec[key];
    const variable = ENV_PREFIX + field.env;
    const value = values[key];
    if (value !== undefined) {
      set.push(`${variable}=${envValue(variable, value)}`);
    } else {
      rest.push(`# ${variable}=${showDefault(key, field.default)}`);
    }
  }
  const lines = [...header.map((l) => `# ${l}`.trimEnd()), '', ...set];
  if (rest.length > 0) lines.push('', '# Defaults of the other variables:', ...rest);
  return `${lines.join('\n')}\n`;
}
