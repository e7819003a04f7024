// The no-op handler whose warm invoke is the Node.js runtime's overhead.
export const handler = async () => ({ ok: true });
