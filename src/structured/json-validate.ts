// Validation of a JSON value against a schema, for the keywords the grammar compiler supports (json-schema-grammar.ts)
// — the server's after-the-fact check of a structured answer (a cut-off answer, say), counted as a parse failure in
// the metrics. Written separately from the compiler on purpose: it reads the schema the way JSON Schema defines it,
// not the way the grammar approximates it, so the two check each other (tests compare both with ajv).
//
// Only schemas the compiler accepted reach here, so unknown keywords are not re-checked. Returns error strings with
// the instance path; empty = valid.

type Schema = Record<string, unknown>;
const isObj = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

function typeMatches(t: unknown, v: unknown): boolean {
  switch (t) {
    case 'null':
      return v === null;
    case 'boolean':
      return typeof v === 'boolean';
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'array':
      return Array.isArray(v);
    case 'object':
      return isObj(v);
    default:
      return false;
  }
}

function resolve(root: unknown, target: string): unknown {
  let node: unknown = root;
  const pointer = decodeURIComponent(target);
  for (const raw of pointer === '#' ? [] : pointer.slice(2).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node)) node = node[Number(seg)];
    else if (isObj(node) && Object.hasOwn(node, seg)) node = node[seg];
    else return undefined;
  }
  return node;
}

const MAX_VALIDATE_DEPTH = 256;

export function validateJson(schema: unknown, value: unknown): string[] {
  const errors: string[] = [];
  const check = (s: unknown, v: unknown, at: string, depth: number): boolean => {
    if (depth > MAX_VALIDATE_DEPTH) {
      errors.push(`${at}: nested too deeply to validate`);
      return false;
    }
    if (s === true || s === undefined) return true;
    if (s === false || !isObj(s)) {
      errors.push(`${at}: no value is allowed here`);
      return false;
    }
    const fail = (msg: string): boolean => {
      errors.push(`${at || '/'}: ${msg}`);
      return false;
    };
    if (typeof s.$ref === 'string') return check(resolve(schema, s.$ref), v, at, depth + 1);
    if (s.nullable === true && v === null) return true;
    if (Object.hasOwn(s, 'const') && !deepEqual(s.const, v)) return fail('is not the const value');
    if (Array.isArray(s.enum) && !s.enum.some((e) => deepEqual(e, v))) return fail('is not one of the enum values');
    if (s.type !== undefined) {
      const types = Array.isArray(s.type) ? s.type : [s.type];
      if (!types.some((t) => typeMatches(t, v))) return fail(`is not of type ${types.join(' or ')}`);
    }
    // Combinators: branch errors are not reported one by one, only that no (or more than one) branch matched.
    const quiet = (sub: unknown): boolean => {
      const n = errors.length;
      const ok = check(sub, v, at, depth + 1);
      errors.length = n;
      return ok;
    };
    if (Array.isArray(s.anyOf) && !s.anyOf.some(quiet)) return fail('matches none of anyOf');
    if (Array.isArray(s.oneOf) && s.oneOf.filter(quiet).length !== 1) return fail('does not match exactly one of oneOf');
    if (Array.isArray(s.allOf) && !s.allOf.every((sub) => check(sub, v, at, depth + 1))) return false;
    let ok = true;
    if (typeof v === 'string') {
      const len = [...v].length;
      if (typeof s.minLength === 'number' && len < s.minLength) ok = fail(`is shorter than ${s.minLength} characters`);
      if (typeof s.maxLength === 'number' && len > s.maxLength) ok = fail(`is longer than ${s.maxLength} characters`);
    }
    if (typeof v === 'number') {
      if (typeof s.minimum === 'number' && (s.exclusiveMinimum === true ? v <= s.minimum : v < s.minimum)) ok = fail(`is below the minimum ${s.minimum}`);
      if (typeof s.maximum === 'number' && (s.exclusiveMaximum === true ? v >= s.maximum : v > s.maximum)) ok = fail(`is above the maximum ${s.maximum}`);
      if (typeof s.exclusiveMinimum === 'number' && v <= s.exclusiveMinimum) ok = fail(`is not above ${s.exclusiveMinimum}`);
      if (typeof s.exclusiveMaximum === 'number' && v >= s.exclusiveMaximum) ok = fail(`is not below ${s.exclusiveMaximum}`);
    }
    if (Array.isArray(v)) {
      if (typeof s.minItems === 'number' && v.length < s.minItems) ok = fail(`has fewer than ${s.minItems} items`);
      if (typeof s.maxItems === 'number' && v.length > s.maxItems) ok = fail(`has more than ${s.maxItems} items`);
      const prefix: unknown[] = Array.isArray(s.prefixItems) ? s.prefixItems : Array.isArray(s.items) ? s.items : [];
      const rest: unknown = Array.isArray(s.prefixItems) ? s.items : Array.isArray(s.items) ? s.additionalItems : s.items;
      v.forEach((item, i) => {
        const sub: unknown = i < prefix.length ? prefix[i] : rest;
        if (!check(sub, item, `${at}/${i}`, depth + 1)) ok = false;
      });
    }
    if (isObj(v)) {
      const props = isObj(s.properties) ? s.properties : {};
      if (Array.isArray(s.required)) {
        for (const r of s.required) if (typeof r === 'string' && !Object.hasOwn(v, r)) ok = fail(`lacks the required property '${r}'`);
      }
      for (const [k, x] of Object.entries(v)) {
        const key = `${at}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
        if (Object.hasOwn(props, k)) {
          if (!check(props[k], x, key, depth + 1)) ok = false;
        } else if (s.additionalProperties === false) {
          ok = fail(`has the property '${k}', which the schema does not allow`);
        } else if (!check(s.additionalProperties, x, key, depth + 1)) {
          ok = false;
        }
      }
    }
    return ok;
  };
  check(schema, value, '', 0);
  return errors;
}
