/**
 * Effective config for GET /config, with secrets removed: values of keys that name a secret, and
 * passwords inside URLs (`http://user:secret@host`).
 */

const SECRET_KEY = /(password|secret|token|credential|apikey|api_key)/i;
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@/]*@/i;
export const REDACTED = '[redacted]';

/** Whether a key's name says its value is a secret (`apiKey`, `password`, `token`, ...). */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

export function redact(value: unknown, key = ''): unknown {
  if (isSecretKey(key) && value !== undefined && value !== null && value !== '') return REDACTED;
  if (typeof value === 'string') return value.replace(URL_PASSWORD, `$1${REDACTED}@`);
  if (Array.isArray(value)) return value.map((item) => redact(item));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, k)]));
  }
  return value;
}
