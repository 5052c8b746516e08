// Validates asyncapi.yaml with the AsyncAPI parser (errors fail; warnings are printed) and,
// given the catalogue of a running server (GET /catalogue as JSON), checks that every
// catalogue type is a message on every channel whose envelope pins its subject and action
// and whose `data` schema is exactly the catalogue's (after resolving references).
//
// Usage: node validate.mjs asyncapi.yaml [catalogue.json]
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';

const [file, catalogueFile] = process.argv.slice(2);
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'));

const ERROR = 0;
const WARNING = 1;
for (const d of diagnostics.filter((d) => d.severity <= WARNING)) {
  const level = d.severity === ERROR ? 'error' : 'warning';
  console.error(`${file}: ${level} at ${d.path.join('.')}: ${d.message}`);
}
if (!document || diagnostics.some((d) => d.severity === ERROR)) {
  console.error(`${file} is not a valid AsyncAPI document`);
  process.exit(1);
}

// The parser marks resolved schemas with x-parser-* keys; the catalogue has none.
function canonical(node) {
  if (Array.isArray(node)) return node.map(canonical);
  if (node && typeof node === 'object') {
    const out = {};
    for (const key of Object.keys(node).sort()) {
      // Types sharing one payload schema differ only in its description.
      if (key.startsWith('x-parser-') || key === '$schema' || key === 'description') continue;
      out[key] = canonical(node[key]);
    }
    return out;
  }
  return node;
}

// Inlines the catalogue schema's own `#/$defs/X` references.
function inline(node, defs) {
  if (Array.isArray(node)) return node.map((item) => inline(item, defs));
  if (node && typeof node === 'object') {
    if (typeof node.$ref === 'string' && node.$ref.startsWith('#/$defs/')) {
      return inline(defs[node.$ref.slice('#/$defs/'.length)], defs);
    }
    const out = {};
    for (const [key, value] of Object.entries(node)) {
      if (key !== '$defs') out[key] = inline(value, defs);
    }
    return out;
  }
  return node;
}

let problems = 0;
function problem(message) {
  console.error(`${file}: ${message}`);
  problems += 1;
}

if (catalogueFile) {
  const catalogue = JSON.parse(readFileSync(catalogueFile, 'utf8'));
  const channels = document.channels().all();
  if (channels.length === 0) problem('no channels');
  for (const channel of channels) {
    const messages = new Map(channel.messages().all().map((m) => [m.name(), m]));
    for (const entry of catalogue.types) {
      const message = messages.get(entry.type);
      if (!message) {
        problem(`channel ${channel.id()} has no message for catalogue type ${entry.type}`);
        continue;
      }
      const payload = message.payload().json();
      const pinned = payload.properties ?? {};
      if (pinned.subject?.const !== entry.subject || pinned.action?.const !== entry.action) {
        problem(`${entry.type}: the envelope does not pin subject and action`);
      }
      const expected = canonical(inline(entry.schema, entry.schema.$defs ?? {}));
      const documented = canonical(pinned.data);
      if (JSON.stringify(expected) !== JSON.stringify(documented)) {
        problem(`${entry.type}: data schema differs from GET /catalogue; regenerate with tools/asyncapi/generate.py`);
      }
    }
    const known = new Set(catalogue.types.map((t) => t.type));
    for (const name of messages.keys()) {
      if (!known.has(name)) problem(`channel ${channel.id()} documents ${name}, which the catalogue lacks`);
    }
  }
  if (problems === 0) {
    console.log(`${file}: valid; ${catalogue.types.length} catalogue types on ${channels.length} channels match`);
  }
} else {
  console.log(`${file}: valid AsyncAPI ${document.version()}`);
}
process.exit(problems === 0 ? 0 : 1);
