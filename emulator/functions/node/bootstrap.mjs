// The emulator's bootstrap of a Node.js function's worker: what AWS's /var/runtime/index.mjs
// does in a Lambda sandbox. It loads AWS's runtime interface client (npm aws-lambda-ric,
// whose entry point is given as the first argument) and runs the handler named in _HANDLER
// from LAMBDA_TASK_ROOT, against the Runtime API in AWS_LAMBDA_RUNTIME_API.
//
// For an ES module handler, resolve.mjs is registered first: its bare imports
// ("@aws-sdk/client-dynamodb") are looked up in NODE_PATH too, as AWS's Node.js 18 and later
// runtimes do for the SDK they bundle (Node itself reads NODE_PATH for require() only). A
// CommonJS handler's require() reads NODE_PATH already, and it is spared the hook's cost
// (its loader thread: a good part of a cold start).
import { existsSync, readFileSync } from "node:fs";
import { register } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

/** Whether the nearest package.json above `folder` says "type": "module". */
function typeModule(folder) {
  for (let dir = folder; ; dir = path.dirname(dir)) {
    if (dir.endsWith(`${path.sep}node_modules`)) return false;
    const file = path.join(dir, "package.json");
    if (existsSync(file)) {
      try {
        return JSON.parse(readFileSync(file, "utf8"))?.type === "module";
      } catch {
        return false;
      }
    }
    if (dir === path.dirname(dir)) return false;
  }
}

/** Whether aws-lambda-ric will import the handler as an ES module: the order its
 * UserFunction tries (the file as named, then .js as CommonJS unless package.json says
 * module, then .js or .mjs as ES modules). */
function esModuleHandler(appRoot, handler) {
  const name = path.basename(handler);
  const match = /^([^.]*)\.(.*)$/.exec(name);
  if (!match) return false;
  const file = path.resolve(appRoot, handler.slice(0, handler.length - name.length), match[1]);
  if (existsSync(file)) return false;
  if (existsSync(`${file}.js`)) return typeModule(path.dirname(file));
  return existsSync(`${file}.mjs`);
}

const [ric] = process.argv.slice(2);
if (!ric) {
  throw new Error("usage: bootstrap.mjs <path of aws-lambda-ric's dist/index.mjs>");
}
const appRoot = process.env.LAMBDA_TASK_ROOT ?? process.cwd();
const handler = process.env._HANDLER ?? "";
if (esModuleHandler(appRoot, handler)) {
  register("./resolve.mjs", import.meta.url);
}
const { run } = await import(pathToFileURL(ric).href);
await run(appRoot, handler);
