// A browser-less console client for end-to-end tests: a cookie jar, forms posted as a browser
// posts them (same Origin, the page's CSRF token), redirects left to the test to follow.

export interface ConsoleResponse { status: number; headers: Headers; text: string }

export class ConsoleClient {
  readonly #base: string;
  cookie = "";

  constructor(base: string) {
    this.#base = base;
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<ConsoleResponse> {
    return this.#send("GET", path, undefined, headers);
  }

  /** Posts a form; `csrf: true` adds the CSRF token read from `from` (a page of this session). */
  async post(path: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<ConsoleResponse> {
    return this.#send("POST", path, new URLSearchParams(fields).toString(), {
      "content-type": "application/x-www-form-urlencoded", origin: this.#base, "sec-fetch-site": "same-origin", ...headers,
    });
  }

  async signIn(token: string): Promise<ConsoleResponse> {
    return this.post("/console/sign-in", { token, next: "/console/approvals" });
  }

  /** The CSRF token the page at `path` carries in its forms. */
  async csrf(path = "/console/approvals"): Promise<string> {
    const page = await this.get(path);
    return /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? "";
  }

  async #send(method: string, path: string, body: string | undefined, headers: Record<string, string>): Promise<ConsoleResponse> {
    const res = await fetch(`${this.#base}${path}`, {
      method, body, redirect: "manual",
      headers: { ...(this.cookie === "" ? {} : { cookie: this.cookie }), ...headers },
    });
    const set = res.headers.get("set-cookie");
    if (set !== null) {
      const value = /^vigil_console=([^;]*)/.exec(set)?.[1] ?? "";
      this.cookie = value === "" || /Max-Age=0/.test(set) ? "" : `vigil_console=${value}`;
    }
    return { status: res.status, headers: res.headers, text: await res.text() };
  }
}
