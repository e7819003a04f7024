// The no-op as an ES module: its cold start includes the resolve hook (bootstrap.mjs).
export const handler = async () => ({ ok: true });
