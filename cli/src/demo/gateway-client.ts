import { readFileSync } from "node:fs";
import { Agent, request } from "node:https";

/** POSTs JSON to the gateway with a client certificate; resolves with status and parsed body. */
export function postEvent(
  url: string,
  tls: { cert: string; key: string; ca: string },
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const agent = new Agent({
    cert: readFileSync(tls.cert),
    key: readFileSync(tls.key),
    ca: readFileSync(tls.ca),
    keepAlive: false,
  });
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: "POST", agent, headers: { "content-type": "application/json", ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          agent.destroy();
          const text = Buffer.concat(chunks).toString("utf8");
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
          } catch {
            resolve({ status: res.statusCode ?? 0, body: { raw: text } });
          }
        });
      },
    );
    req.on("error", (err) => {
      agent.destroy();
      reject(err);
    });
    req.end(JSON.stringify(body));
  });
}
