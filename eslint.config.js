// ESLint flat config: typescript-eslint's recommended rules over src, tests, bench, tools, grafana and
// vitest.config.ts (the `lint` script names that scope), plus the import boundaries that keep the floors of src/ apart.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

// ---------------------------------------------------------------------------------------------------------------------
// Floors of src/. Every import of a file in src/ is checked against the floor it lives in: `allow` lists the only
// top-level entries of src/ it may import besides its own folder, `deny` the entries it must never import. Entries
// are folder names or the specifiers of top-level files as they are written in an import ('defaults.js').
// ---------------------------------------------------------------------------------------------------------------------

/** Shared leaf files: anyone may import them, they import nothing of src/. */
const LEAVES = ['defaults.js', 'faults.js'];
/** The composition roots and the package face: nothing in src/ imports them (cli imports serve, nothing else does). */
const TOPS = ['serve.js', 'cli.js', 'index.js'];

const FLOORS = {
  engine: { allow: [], why: 'src/engine/ imports nothing else of src/' },
  config: { allow: ['engine', ...LEAVES], why: 'src/config/ imports only src/engine/ and the shared leaves' },
  metrics: { allow: ['engine', 'config', ...LEAVES], why: 'src/metrics/ imports only src/engine/, src/config/ and the shared leaves' },
  alerts: { allow: [...LEAVES], why: 'src/alerts/ imports nothing else of src/ but the shared leaves' },
  structured: { allow: [], why: 'src/structured/ (JSON Schema → grammar) imports nothing else of src/' },
  loadgen: { allow: ['engine', ...LEAVES], why: 'src/loadgen/ imports only src/engine/ and the shared leaves' },
  tuner: { deny: ['controlplane', ...TOPS], why: 'src/tuner/ never imports src/controlplane/, src/serve.ts, src/cli.ts or src/index.ts' },
  controlplane: { deny: ['loadgen', ...TOPS], why: 'src/controlplane/ never imports src/loadgen/, src/serve.ts, src/cli.ts or src/index.ts' },
};

/** Top-level files of src/ with rules of their own (their imports start with './'); src/cli.ts imports everything. */
const TOP_FILES = {
  'src/defaults.ts': { allow: [], why: 'src/defaults.ts is a shared leaf: it imports nothing of src/' },
  'src/faults.ts': { allow: [], why: 'src/faults.ts is a shared leaf: it imports nothing of src/' },
  'src/index.ts': { deny: ['serve.js', 'cli.js'], why: 'the package face (src/index.ts) never imports the composition roots' },
  'src/serve.ts': { deny: ['cli.js', 'index.js'], why: 'src/serve.ts never imports src/cli.ts (cli imports serve) or the package face' },
};

/** Deepest folder level below a floor that the generated globs cover (src/tuner/report/ is depth 1). */
const MAX_DEPTH = 8;

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A regex over import specifiers that matches a forbidden import. `up` is the regex source of the prefix that leads
 * from the importing file back to src/ ('(?:\\.\\./){2}' two levels down, '\\./' for a file in src/ itself).
 * Specifiers that climb above src/ ('../../package.json') are not the floors' business and never match.
 */
function forbiddenRe(up, { allow, deny }, own) {
  const alt = (names) => names.map(escapeRe).join('|');
  const body = deny ? `(?:${alt(deny)})(?:/|$)` : `(?!(?:${alt([...(own ? [own] : []), ...allow, '..', '.'])})(?:/|$)).`;
  return `^${up}${body}`;
}

/** The rules that enforce one floor: static imports and re-exports, `import()` and `import('…')` types. */
function boundaryRules(re, why) {
  // esquery regex literals cannot hold '/', so the same regex is spelled with \x2F there.
  const sel = re.replaceAll('/', '\\x2F');
  const message = `Import boundary: ${why} (see eslint.config.js, FLOORS).`;
  return {
    '@typescript-eslint/no-restricted-imports': [
      'error',
      {
        patterns: [
          { regex: re, caseSensitive: true, message },
          {
            regex: '^tuneloop(?:/|$)',
            caseSensitive: true,
            message: 'Import boundary: src/ imports its own modules by relative path, never through the package name (it would bypass the floors).',
          },
        ],
      },
    ],
    'no-restricted-syntax': ['error', { selector: `ImportExpression[source.value=/${sel}/]`, message }, { selector: `TSImportType[source.value=/${sel}/]`, message }],
  };
}

/** Any other folder or top-level file of src/ (one added later included): it never imports the roots or the face. */
const ANY = { deny: [...TOPS], why: 'only src/cli.ts imports src/serve.ts; nothing in src/ imports src/cli.ts or src/index.ts' };

const depths = Array.from({ length: MAX_DEPTH + 1 }, (_, depth) => depth);
const floorGlob = (floor, depth) => `src/${floor}/${'*/'.repeat(depth)}*.ts`;
const upToSrc = (depth) => `(?:\\.\\./){${depth + 1}}`;

// Later blocks win: the catch-alls come first, the floors and the named top-level files after them.
const boundaryConfigs = [
  ...depths.map((depth) => ({
    name: `tuneloop/boundaries/any-folder/depth-${depth}`,
    files: [floorGlob('*', depth)],
    rules: boundaryRules(forbiddenRe(upToSrc(depth), ANY, null), ANY.why),
  })),
  { name: 'tuneloop/boundaries/any-top-file', files: ['src/*.ts'], ignores: ['src/cli.ts'], rules: boundaryRules(forbiddenRe('\\./', ANY, null), ANY.why) },
  ...Object.entries(FLOORS).flatMap(([floor, rule]) =>
    depths.map((depth) => ({
      name: `tuneloop/boundaries/${floor}/depth-${depth}`,
      files: [floorGlob(floor, depth)],
      rules: boundaryRules(forbiddenRe(upToSrc(depth), rule, floor), rule.why),
    })),
  ),
  ...Object.entries(TOP_FILES).map(([file, rule]) => ({
    name: `tuneloop/boundaries/${file}`,
    files: [file],
    rules: boundaryRules(forbiddenRe('\\./', rule, null), rule.why),
  })),
];

export default defineConfig(
  {
    name: 'tuneloop/ignores',
    ignores: ['dist/', 'build/', 'node_modules/', 'native/', 'reports/', 'models/', '.tmp/', 'bench/.cache/'],
  },
  {
    name: 'tuneloop/typescript',
    files: ['**/*.ts'],
    // Type-aware: one TypeScript program over tsconfig.check.json's files (about 30 s on two cores, 3x untyped).
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      parserOptions: { project: './tsconfig.check.json', tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // `_name` marks a parameter kept for arity (Express error handlers) or a field dropped by destructuring.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // `async` without `await` is deliberate: a method of a Promise-returning interface turns its throws into rejections.
      '@typescript-eslint/require-await': 'off',
      // Added (not in recommended): type-only imports stay marked, as `verbatimModuleSyntax` will require; `import()` types are fine.
      // A variable assigned once after a closure that reads it was declared (the closure runs later) cannot be const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
    },
  },
  {
    name: 'tuneloop/scripts-and-tests',
    files: ['tests/**/*.ts', 'bench/**/*.ts', 'tools/**/*.ts'],
    // Tests and scripts probe parsed HTTP/JSON bodies field by field; typing every response would only restate the API.
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  ...boundaryConfigs,
);
