// The no-op handler whose warm invoke is the Node.js runtime's overhead (CommonJS).
exports.handler = async () => ({ ok: true });
