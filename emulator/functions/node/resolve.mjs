// Module resolution hook (node:module register): a bare specifier that Node's ES module
// resolver cannot find from the importing file is looked up in each NODE_PATH folder, in
// order, as a require() would. Relative, absolute and URL specifiers are left alone.
import path from "node:path";
import { pathToFileURL } from "node:url";

const folders = (process.env.NODE_PATH ?? "").split(path.delimiter).filter(Boolean);

function bare(specifier) {
  return !(specifier.startsWith(".") || specifier.startsWith("/") || /^[a-z][a-z0-9+.-]*:/i.test(specifier));
}

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (error?.code !== "ERR_MODULE_NOT_FOUND" || !bare(specifier)) {
      throw error;
    }
    for (const folder of folders) {
      // A parent inside the folder: the resolver looks in <folder>/node_modules, then in
      // <folder>'s parents' node_modules, which holds <folder> itself when it is one.
      const parentURL = pathToFileURL(path.join(folder, "noop.mjs")).href;
      try {
        return await nextResolve(specifier, { ...context, parentURL });
      } catch {
        // not in this folder
      }
    }
    throw error;
  }
}
