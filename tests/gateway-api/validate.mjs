// Strict validation of Gateway API resources against the schemas @kubernetes-models/gateway-api
// compiles from the Gateway API's CRDs, for the template's tests.
//
// Input on stdin: a JSON array of resources. Output on stdout: a JSON array, for each resource
// the list of its problems ("/spec/rules/0/timeouts/request: must match pattern ...").
//
// The package's compiled validators check types, patterns, enums and required fields, but let
// unknown fields through, which the API server's strict field validation rejects. Those are
// found here from each model's declared properties (its .d.ts), as kubeconform's -strict closes
// a JSON schema.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const MODULES = join(dirname(fileURLToPath(import.meta.url)), "node_modules");
const PACKAGE = join(MODULES, "@kubernetes-models", "gateway-api");
// A property of a class, `"name"?: Type;`, or the start of an inline object type, `"name"?: {`.
const PROPERTY = /^\s+"([^"]+)"\??: (.+?);?$/;
const IMPORT = /^import \{ (\w+) \} from "([^"]+)";$/;

const declarations = new Map();

// The properties a model class declares, each with the declaration file of its type (null for
// a scalar, a map or a literal); null when the file declares no class (a string type, say).
function declaredProperties(file) {
  if (declarations.has(file)) return declarations.get(file);
  const lines = readFileSync(file, "utf8").split("\n");
  const imports = new Map();
  for (const line of lines) {
    const found = IMPORT.exec(line);
    if (found) imports.set(found[1], importedFile(file, found[2]));
  }
  const start = lines.findIndex((line) => /^export declare class \w+ extends Model</.test(line));
  let properties = null;
  if (start >= 0) {
    properties = new Map();
    let depth = 0; // inside an inline object type (a map), whose keys are not properties
    for (const line of lines.slice(start + 1)) {
      if (depth === 0 && line.startsWith("}")) break;
      const found = depth === 0 && PROPERTY.exec(line);
      depth += (line.match(/\{/g) ?? []).length - (line.match(/\}/g) ?? []).length;
      if (!found) continue;
      const type = /^(?:Array<)?(\w+)>?$/.exec(found[2]);
      properties.set(found[1], type && imports.has(type[1]) ? imports.get(type[1]) : null);
    }
  }
  declarations.set(file, properties);
  return properties;
}

function importedFile(from, specifier) {
  const base = specifier.startsWith(".")
    ? join(dirname(from), specifier)
    : join(MODULES, specifier);
  return base.replace(/\.js$/, "") + ".d.ts";
}

function* unknownFields(data, file, where) {
  if (Array.isArray(data)) {
    for (const [index, item] of data.entries()) yield* unknownFields(item, file, `${where}/${index}`);
    return;
  }
  const properties = file && declaredProperties(file);
  if (!properties || data === null || typeof data !== "object") return;
  for (const [key, value] of Object.entries(data)) {
    if (!properties.has(key)) yield `${where}/${key}: unknown field`;
    else yield* unknownFields(value, properties.get(key), `${where}/${key}`);
  }
}

async function problems(resource) {
  const [group, version] = String(resource.apiVersion).split("/");
  const model = join(PACKAGE, group, version ?? "", `${resource.kind}`);
  let Model;
  try {
    Model = (await import(`${model}.js`))[resource.kind];
  } catch {
    return [`${resource.apiVersion} ${resource.kind} is not in @kubernetes-models/gateway-api`];
  }
  const found = [...unknownFields(resource, `${model}.d.ts`, "")];
  try {
    new Model(resource).validate();
  } catch (error) {
    for (const problem of error.errors ?? [error]) {
      const detail = problem.params ? ` ${JSON.stringify(problem.params)}` : "";
      found.push(`${problem.instancePath || "/"}: ${problem.message ?? problem.keyword}${detail}`);
    }
  }
  return found;
}

const resources = JSON.parse(readFileSync(0, "utf8"));
console.log(JSON.stringify(await Promise.all(resources.map(problems))));
