// A typed client for the Authly API. The types in ./schema.ts are generated from
// openapi.yaml by openapi-typescript (npm run generate), and openapi-fetch checks every
// path, parameter, body and response against them at compile time.
import createClient, { type Client, type ClientOptions } from "openapi-fetch";

import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };

export type User = components["schemas"]["User"];
export type TokenResponse = components["schemas"]["TokenResponse"];
export type Session = components["schemas"]["Session"];
export type Problem = components["schemas"]["Problem"];
export type ErrorCode = components["schemas"]["ErrorCode"];

export type AuthlyClient = Client<paths>;

/** createAuthlyClient returns a client for the Authly server at baseUrl. */
export function createAuthlyClient(baseUrl: string, options: Omit<ClientOptions, "baseUrl"> = {}): AuthlyClient {
  return createClient<paths>({ ...options, baseUrl });
}

/** bearer returns the header that authenticates a request with an access token. */
export function bearer(accessToken: string): { Authorization: string } {
  return { Authorization: `Bearer ${accessToken}` };
}
