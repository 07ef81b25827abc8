// The request fields of the official openai SDK's create-params types, read from its .d.ts files with the TypeScript
// parser (not regexes): for each entry of SDK_REQUEST_TYPES the named interface or union type alias is resolved in its
// file, `extends` clauses and union members are followed (ChatCompletionCreateParams = NonStreaming | Streaming, each
// extending the Base interface), and every property name is collected. What tests/controlplane/request-fields.test.ts
// checks against src/controlplane/openai/field-policy.ts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from './shared.js';

export type SdkRoute = 'chat_completions' | 'completions' | 'embeddings';

/** Where each route's request type lives in the SDK package, and the type to start from. */
export const SDK_REQUEST_TYPES: Record<SdkRoute, { file: string; type: string }> = {
  chat_completions: { file: 'resources/chat/completions/completions.d.ts', type: 'ChatCompletionCreateParams' },
  completions: { file: 'resources/completions.d.ts', type: 'CompletionCreateParams' },
  embeddings: { file: 'resources/embeddings.d.ts', type: 'EmbeddingCreateParams' },
};

/** The installed SDK (its package.json is not in its `exports`, so it is found by path, not resolved). */
export function openaiPackageDir(): string {
  return join(REPO_ROOT, 'node_modules', 'openai');
}

export function openaiSdkVersion(): string {
  return (JSON.parse(readFileSync(join(openaiPackageDir(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** Every property name of `typeName` in one .d.ts file, through extends and union members declared in that file. */
export function typeFields(file: string, typeName: string): string[] {
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const interfaces = new Map<string, ts.InterfaceDeclaration>();
  const aliases = new Map<string, ts.TypeAliasDeclaration>();
  // Top-level declarations only: the namespaces of the same name re-export, they do not redeclare.
  for (const st of src.statements) {
    if (ts.isInterfaceDeclaration(st)) interfaces.set(st.name.text, st);
    else if (ts.isTypeAliasDeclaration(st)) aliases.set(st.name.text, st);
  }
  const fields = new Set<string>();
  const seen = new Set<string>();
  const fromTypeNode = (node: ts.TypeNode): void => {
    if (ts.isUnionTypeNode(node) || ts.isIntersectionTypeNode(node)) node.types.forEach(fromTypeNode);
    else if (ts.isParenthesizedTypeNode(node)) fromTypeNode(node.type);
    else if (ts.isTypeReferenceNode(node)) visit(node.typeName.getText(src));
    else if (ts.isTypeLiteralNode(node)) node.members.forEach(addMember);
    else throw new Error(`${file}: cannot read a ${ts.SyntaxKind[node.kind]} in ${typeName}`);
  };
  const addMember = (m: ts.TypeElement): void => {
    if (ts.isPropertySignature(m)) fields.add(m.name.getText(src).replace(/^['"]|['"]$/g, ''));
  };
  const visit = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    const itf = interfaces.get(name);
    if (itf) {
      itf.members.forEach(addMember);
      for (const h of itf.heritageClauses ?? []) for (const t of h.types) visit(t.expression.getText(src));
      return;
    }
    const alias = aliases.get(name);
    if (alias) return fromTypeNode(alias.type);
    throw new Error(`${file}: no interface or type alias named ${name}`);
  };
  visit(typeName);
  return [...fields].sort();
}

/** The request fields of each route as the installed SDK declares them. */
export function sdkRequestFields(): Record<SdkRoute, string[]> {
  const dir = openaiPackageDir();
  const out = {} as Record<SdkRoute, string[]>;
  for (const [route, { file, type }] of Object.entries(SDK_REQUEST_TYPES) as [SdkRoute, { file: string; type: string }][]) {
    out[route] = typeFields(join(dir, file), type);
  }
  return out;
}
