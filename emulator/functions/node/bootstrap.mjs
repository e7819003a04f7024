// The emulator's bootstrap of a Node.js function's worker: what AWS's /var/runtime/index.mjs
// does in a Lambda sandbox. It loads AWS's runtime interface client (npm aws-lambda-ric,
// whose entry point is given as the first argument) and runs the handler named in _HANDLER
// from LAMBDA_TASK_ROOT, against the Runtime API in AWS_LAMBDA_RUNTIME_API.
//
// Before the handler is imported, resolve.mjs is registered: an ES module's bare imports
// ("@aws-sdk/client-dynamodb") are looked up in NODE_PATH too, as AWS's Node.js 18 and later
// runtimes do for the SDK they bundle (Node itself reads NODE_PATH for require() only).
import { register } from "node:module";
import { pathToFileURL } from "node:url";

register("./resolve.mjs", import.meta.url);

const [ric] = process.argv.slice(2);
if (!ric) {
  throw new Error("usage: bootstrap.mjs <path of aws-lambda-ric's dist/index.mjs>");
}
const { run } = await import(pathToFileURL(ric).href);
await run(process.env.LAMBDA_TASK_ROOT ?? process.cwd(), process.env._HANDLER ?? "");
