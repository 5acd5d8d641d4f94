export { freePort } from "@jetkit/launcher";

import { createServer, type Server } from "node:net";

/**
 * A listener that closes every connection at once. Cluster nodes advertise it as their route
 * address, so no node can open a direct route that would bypass the route fault proxies.
 */
export async function startRefuser(): Promise<{ port: number; close(): Promise<void> }> {
  const srv: Server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = srv.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return { port, close: () => new Promise<void>((resolve) => srv.close(() => resolve())) };
}
