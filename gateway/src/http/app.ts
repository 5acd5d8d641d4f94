import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { findJetkitError, uuidv7 } from "@jetkit/contracts";
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from "fastify";
import { GatewayErrorCodes, httpStatusOf } from "../errors.js";
import type { GatewayContext } from "./context.js";
import { whoamiRoute } from "./health.js";
import { publishRoute } from "./publish.js";
import { pullRoutes } from "./pull.js";
import { streamRoute } from "./stream.js";

/** Fastify error codes the gateway answers with its own codes. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: GatewayErrorCodes.BODY_TOO_LARGE,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: GatewayErrorCodes.UNSUPPORTED_MEDIA_TYPE,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: GatewayErrorCodes.BAD_REQUEST,
  FST_ERR_CTP_EMPTY_JSON_BODY: GatewayErrorCodes.BAD_BODY,
};

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/** The error code each refused request was answered with, for the request metrics. */
const OUTCOME = new WeakMap<FastifyRequest, string>();

/** The JSON body of a gateway error answer. */
function errorBody(code: string, message: string, field?: string): string {
  return JSON.stringify({ error: { code, message, ...(field ? { field } : {}) } });
}

/**
 * Errors Node's HTTP parser meets before Fastify has a request (over-large head, malformed
 * request line): answered as JSON with a code and `Connection: close`, then the socket is ended
 * (flushed, not reset).
 */
function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  let status: number;
  let body: string;
  if (err.code === "HPE_HEADER_OVERFLOW") {
    status = 431;
    body = errorBody(
      GatewayErrorCodes.HEADERS_TOO_LARGE,
      "the request line and headers are larger than the gateway reads (16 KiB); send fewer or shorter headers.",
    );
  } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    status = 408;
    body = errorBody(GatewayErrorCodes.BAD_REQUEST, "the request was not received in time; send it again.");
  } else {
    status = 400;
    body = errorBody(
      GatewayErrorCodes.BAD_REQUEST,
      "the request is not valid HTTP/1.1; check the request line and headers.",
    );
  }
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * The gateway's Fastify app over `ctx`. `opts` are extra Fastify server options (`https` for the
 * real server); tests build it without TLS and call `inject`, with `ctx.authenticate` standing
 * in for the certificate.
 */
export function buildApp(
  ctx: GatewayContext,
  opts: FastifyServerOptions & Record<string, unknown> = {},
): FastifyInstance {
  const app = Fastify({
    ...opts,
    loggerInstance: ctx.log,
    genReqId: () => uuidv7(),
    bodyLimit: ctx.limits.bodyBytes,
    // Long subjects must reach the handler to get a 400 that says so, not a bare 404.
    routerOptions: { maxParamLength: 4096 },
    clientErrorHandler,
    // Errors of the router (bad percent-encoding, a path parameter over maxParamLength): coded
    // JSON like every other answer, never echoing the URL.
    frameworkErrors: (err, req, reply) => {
      const tooLong = err.code === "FST_ERR_MAX_PARAM_LENGTH";
      const code = tooLong
        ? GatewayErrorCodes.URL_TOO_LONG
        : err.code === "FST_ERR_BAD_URL"
          ? GatewayErrorCodes.BAD_REQUEST
          : GatewayErrorCodes.INTERNAL;
      const message = tooLong
        ? "a path segment of the URL is longer than 4096 characters; subjects, names and tokens are much shorter."
        : code === GatewayErrorCodes.BAD_REQUEST
          ? "the URL is not valid: it has malformed percent-encoding (% must be followed by two hex digits)."
          : `internal error (request ${String(req.id)}); the gateway log has the cause.`;
      OUTCOME.set(req as unknown as FastifyRequest, code);
      if (code === GatewayErrorCodes.INTERNAL) req.log.error({ err }, "router error");
      else req.log.info({ code }, "request refused");
      void (reply as unknown as FastifyReply)
        .code(httpStatusOf(code))
        .type("application/json")
        .send(errorBody(code, message));
    },
  } as FastifyServerOptions) as unknown as FastifyInstance;

  // Bodies are parsed by the routes (strict protobuf JSON / binary), so Fastify only collects them.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    ["application/json", "application/cloudevents+json"],
    { parseAs: "string" },
    (_req, body, done) => done(null, body),
  );
  app.addContentTypeParser(
    ["application/protobuf", "application/x-protobuf"],
    { parseAs: "buffer" },
    (_req, body, done) => done(null, body),
  );
  // callback-style hooks: no promise per request
  app.addHook("onRequest", (req, reply, done) => {
    reply.header("x-request-id", String(req.id));
    // protobuf JSON is the default body format
    if (req.method !== "GET" && req.method !== "DELETE" && !req.headers["content-type"]) {
      req.headers["content-type"] = "application/json";
    }
    done();
  });
  app.addHook("onResponse", (req, reply, done) => {
    ctx.metrics.request(
      req.routeOptions.url ?? "unmatched",
      req.method,
      reply.statusCode,
      OUTCOME.get(req) ?? (reply.statusCode < 400 ? "ok" : "error"),
      reply.elapsedTime / 1000,
    );
    done();
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const jk = findJetkitError(err);
    let code: string;
    let message: string;
    let field: unknown;
    if (jk) {
      code = jk.code;
      message = jk.message;
      field = jk.details.field;
    } else if (err.code && FASTIFY_CODES[err.code]) {
      code = FASTIFY_CODES[err.code]!;
      message =
        code === GatewayErrorCodes.BODY_TOO_LARGE
          ? `the body is larger than ${ctx.limits.bodyBytes} bytes; send a smaller event.`
          : code === GatewayErrorCodes.UNSUPPORTED_MEDIA_TYPE
            ? "send application/json (protobuf JSON), application/protobuf (binary) or a CloudEvent as application/cloudevents+json (structured mode; no batches)."
            : err.message;
    } else if ((err.statusCode ?? 500) < 500) {
      code = GatewayErrorCodes.BAD_REQUEST;
      message = err.message;
    } else {
      code = GatewayErrorCodes.INTERNAL;
      message = `internal error (request ${String(req.id)}); the gateway log has the cause.`;
    }
    const status = httpStatusOf(code);
    OUTCOME.set(req, code);
    if (status >= 500) req.log.error({ err, code }, "request failed");
    else req.log.info({ code, err_message: message }, "request refused");
    reply
      .code(status)
      .type("application/json")
      .send({ error: { code, message, ...(typeof field === "string" && field ? { field } : {}) } });
  });
  app.setNotFoundHandler((req, reply) => {
    OUTCOME.set(req, GatewayErrorCodes.NOT_FOUND);
    reply.code(404).send({
      error: {
        code: GatewayErrorCodes.NOT_FOUND,
        // at most the start of the path: a long URL is not echoed back
        message: `no route ${req.method} ${truncate(req.url.split("?")[0] ?? "", 100)}. The routes are under /v1 (see the gateway README).`,
      },
    });
  });

  whoamiRoute(app, ctx);
  publishRoute(app, ctx);
  streamRoute(app, ctx);
  pullRoutes(app, ctx);
  return app;
}
