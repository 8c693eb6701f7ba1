// End-to-end test of the TypeScript client against the real Authly server: the binary built
// from this repository, on a fresh embedded database in a temporary directory.
//
// AUTHLY_BIN may name a server binary that is already built (make test-ts does); otherwise
// the test builds one with `go build`.
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from "jose";

import { bearer, createAuthlyClient, type AuthlyClient, type ErrorCode, type Problem } from "../src/index.js";

// dist/test/e2e.test.js -> the repository root
const repoRoot = fileURLToPath(new URL("../../../../", import.meta.url));

const admin = { username: "admin", email: "admin@example.com", password: "e2e-admin-password-0123" };
const alice = { username: "alice", email: "alice@example.com", password: "correct horse battery staple" };

let workDir = "";
let server: ChildProcess | undefined;
let serverExit: Promise<number | null> | undefined;
let serverLog = "";
let client: AuthlyClient;
let baseUrl = "";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (address && typeof address === "object" ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

// serverEnv is this process's environment without any Authly setting, so that the server
// runs on a fresh embedded database whatever the caller has exported.
function serverEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(AUTHLY_|DATABASE_URL$|JWT_|ACCESS_TOKEN_|REFRESH_TOKEN_)/.test(key)) {
      env[key] = value;
    }
  }
  return { ...env, ...extra };
}

async function waitForHealth(baseUrl: string, exited: Promise<number | null>): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (gone) {
      throw new Error(`the server exited before it was healthy:\n${serverLog}`);
    }
    try {
      const res = await fetch(`${baseUrl}/health`);
      if (res.status === 200) {
        return;
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the server was not healthy within 120s:\n${serverLog}`);
}

before(async () => {
  workDir = mkdtempSync(join(tmpdir(), "authly-ts-e2e-"));
  // The embedded cluster runs as the postgres account when the server runs as root, so the
  // directory must be traversable by it.
  chmodSync(workDir, 0o755);
  let bin = process.env.AUTHLY_BIN ?? "";
  if (bin === "") {
    bin = join(workDir, "authly");
    execFileSync("go", ["build", "-o", bin, "./cmd/server"], { cwd: repoRoot, stdio: "inherit" });
  }
  const addr = `127.0.0.1:${await freePort()}`;
  const child = spawn(bin, ["serve"], {
    env: serverEnv({
      AUTHLY_DATA_DIR: join(workDir, "data"),
      AUTHLY_LISTEN_ADDR: addr,
      AUTHLY_BCRYPT_COST: "4",
      AUTHLY_LOG_LEVEL: "warn",
      AUTHLY_ADMIN_USERNAME: admin.username,
      AUTHLY_ADMIN_EMAIL: admin.email,
      AUTHLY_ADMIN_PASSWORD: admin.password,
    }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  server = child;
  child.stdout?.on("data", (b: Buffer) => (serverLog += b.toString()));
  child.stderr?.on("data", (b: Buffer) => (serverLog += b.toString()));
  serverExit = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  baseUrl = `http://${addr}`;
  await waitForHealth(baseUrl, serverExit);
  client = createAuthlyClient(baseUrl);
});

after(async () => {
  if (server && serverExit) {
    // SIGTERM drains requests and stops the embedded cluster before the server exits.
    server.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), 60_000)));
    const code = await Promise.race([serverExit, timeout]);
    clearTimeout(timer);
    if (code === "timeout") {
      server.kill("SIGKILL");
    }
    assert.equal(code, 0, `the server did not stop cleanly on SIGTERM:\n${serverLog}`);
  }
  if (workDir !== "") {
    rmSync(workDir, { recursive: true, force: true });
  }
});

// expectProblem asserts that a call failed with this status and this error code. The code
// is typed by the ErrorCode enum of openapi.yaml, so a code dropped from the contract fails
// to compile.
function expectProblem(
  result: { error?: Problem | undefined; response: Response },
  status: number,
  code: ErrorCode,
): void {
  assert.equal(result.response.status, status, `want ${status} ${code}, got ${result.response.status}`);
  assert.equal(result.response.headers.get("content-type"), "application/problem+json");
  assert.equal(result.error?.code, code);
  assert.equal(result.error?.status, status);
}

async function login(username: string, password: string) {
  const { data, error, response } = await client.POST("/api/v1/auth/token", {
    body: { grant_type: "password", username, password },
  });
  assert.equal(response.status, 200, JSON.stringify(error));
  assert.ok(data);
  assert.equal(data.token_type, "Bearer");
  assert.equal(response.headers.get("cache-control"), "no-store");
  return data;
}

test("register, admin verify, login, me, refresh with rotation, reuse refused, logout, 401 after logout", async (t) => {
  await t.test("a new user registers and is not yet verified", async () => {
    const { data, response } = await client.POST("/api/v1/users", { body: alice });
    assert.equal(response.status, 201);
    assert.ok(data);
    assert.equal(data.username, alice.username);
    assert.equal(data.is_verified, false);
    assert.equal(data.is_admin, false);
    expectProblem(
      await client.POST("/api/v1/auth/token", {
        body: { grant_type: "password", username: alice.username, password: alice.password },
      }),
      403,
      "account_unverified",
    );
    expectProblem(await client.POST("/api/v1/users", { body: alice }), 400, "username_taken");
  });

  let aliceId = "";
  await t.test("the admin verifies her", async () => {
    const adminTokens = await login(admin.username, admin.password);
    const list = await client.GET("/api/v1/users", {
      params: { query: { limit: 10 } },
      headers: bearer(adminTokens.access_token),
    });
    assert.equal(list.response.status, 200);
    const found = list.data?.find((u) => u.username === alice.username);
    assert.ok(found, "alice is listed");
    aliceId = found.id;
    const { data, response } = await client.PUT("/api/v1/users/{user_id}/verify", {
      params: { path: { user_id: aliceId } },
      headers: bearer(adminTokens.access_token),
    });
    assert.equal(response.status, 200);
    assert.equal(data?.is_verified, true);
  });

  let tokens = { access_token: "", refresh_token: "" };
  await t.test("she logs in with her email and reads her account", async () => {
    tokens = await login(alice.email, alice.password);
    const { data, response } = await client.GET("/api/v1/users/me", { headers: bearer(tokens.access_token) });
    assert.equal(response.status, 200);
    assert.equal(data?.id, aliceId);
    assert.equal(data?.email, alice.email);
    assert.ok(data?.last_login, "last_login is set by the login");
  });

  let rotated = { access_token: "", refresh_token: "" };
  await t.test("a refresh rotates the pair and retires the old access token", async () => {
    const { data, response } = await client.POST("/api/v1/auth/refresh", {
      body: { grant_type: "refresh_token", refresh_token: tokens.refresh_token },
    });
    assert.equal(response.status, 200);
    assert.ok(data);
    assert.notEqual(data.refresh_token, tokens.refresh_token);
    assert.notEqual(data.access_token, tokens.access_token);
    rotated = data;
    const me = await client.GET("/api/v1/users/me", { headers: bearer(rotated.access_token) });
    assert.equal(me.response.status, 200);
    expectProblem(await client.GET("/api/v1/users/me", { headers: bearer(tokens.access_token) }), 401, "invalid_token");
  });

  await t.test("reusing the spent refresh token is refused and revokes the session", async () => {
    expectProblem(
      await client.POST("/api/v1/auth/refresh", {
        body: { grant_type: "refresh_token", refresh_token: tokens.refresh_token },
      }),
      401,
      "refresh_token_reused",
    );
    // The whole family is gone: the pair issued by the rotation no longer works either.
    expectProblem(await client.GET("/api/v1/users/me", { headers: bearer(rotated.access_token) }), 401, "invalid_token");
    expectProblem(
      await client.POST("/api/v1/auth/refresh", {
        body: { grant_type: "refresh_token", refresh_token: rotated.refresh_token },
      }),
      401,
      "invalid_grant",
    );
  });

  await t.test("logout ends every session, and the token then answers 401", async () => {
    const fresh = await login(alice.username, alice.password);
    const { data, response } = await client.POST("/api/v1/auth/logout", { headers: bearer(fresh.access_token) });
    assert.equal(response.status, 200);
    assert.ok(data);
    assert.ok(data.invalidated_tokens >= 2, `invalidated ${data.invalidated_tokens} tokens`);
    const after = await client.GET("/api/v1/users/me", { headers: bearer(fresh.access_token) });
    expectProblem(after, 401, "invalid_token");
    assert.match(after.response.headers.get("www-authenticate") ?? "", /^Bearer /);
  });
});

test("an access token verifies offline against the JWKS with jose", async () => {
  const tokens = await login(admin.username, admin.password);
  const jwksUrl = new URL("/.well-known/jwks.json", baseUrl);
  const res = await fetch(jwksUrl);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/jwk-set+json");
  assert.match(res.headers.get("cache-control") ?? "", /^public, max-age=\d+$/);
  const set = (await res.json()) as { keys: Record<string, unknown>[] };
  assert.ok(set.keys.length > 0, "the JWKS has keys");
  for (const key of set.keys) {
    for (const member of ["d", "p", "q", "dp", "dq", "qi", "k"]) {
      assert.equal(key[member], undefined, `the JWKS has the private member ${member}`);
    }
  }

  const jwks = createRemoteJWKSet(jwksUrl);
  const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, {
    issuer: "authly",
    typ: "at+jwt",
    algorithms: ["ES256"],
  });
  assert.equal(protectedHeader.alg, "ES256");
  assert.equal(protectedHeader.kid, set.keys[0]?.kid, "signed by the first key of the JWKS");
  assert.ok(typeof payload.sub === "string" && payload.sub !== "");
  assert.ok(typeof payload.exp === "number" && payload.exp * 1000 > Date.now());

  // A refresh token carries another typ, and a wrong issuer is refused.
  assert.equal(decodeProtectedHeader(tokens.refresh_token).typ, "rt+jwt");
  await assert.rejects(jwtVerify(tokens.refresh_token, jwks, { issuer: "authly", typ: "at+jwt", algorithms: ["ES256"] }));
  await assert.rejects(jwtVerify(tokens.access_token, jwks, { issuer: "someone-else", typ: "at+jwt", algorithms: ["ES256"] }));
});
