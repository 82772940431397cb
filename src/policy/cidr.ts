// IPv4/IPv6 addresses and CIDR ranges for the `sourceCidrs` matcher and the CEL function
// `inCidr`. Parsing is strict (no leading zeros, no zone ids) so an odd spelling of an address
// cannot slip past a range; IPv4-mapped IPv6 addresses (::ffff:10.0.0.1) count as IPv4.

/** An address as four 32-bit words (IPv4 uses only the last word). */
export interface Address {
  v6: boolean;
  words: [number, number, number, number];
}

export interface Cidr {
  v6: boolean;
  words: [number, number, number, number];
  prefix: number;
}

function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^(?:0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

function parseIpv6(text: string): [number, number, number, number] | undefined {
  if (text.includes("%")) return undefined;
  let head = text;
  let tailV4: number | undefined;
  const lastColon = text.lastIndexOf(":");
  if (lastColon !== -1 && text.includes(".", lastColon)) {
    tailV4 = parseIpv4(text.slice(lastColon + 1));
    if (tailV4 === undefined) return undefined;
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return undefined;
  const group = /^[0-9a-fA-F]{1,4}$/;
  const parseGroups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const groups = part.split(":");
    if (!groups.every((g) => group.test(g))) return undefined;
    return groups.map((g) => parseInt(g, 16));
  };
  const left = parseGroups(halves[0] ?? "");
  const right = halves.length === 2 ? parseGroups(halves[1] ?? "") : [];
  if (left === undefined || right === undefined) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - left.length - right.length;
    if (missing < 1) return undefined;
    groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  } else {
    groups = left;
  }
  if (groups.length !== 8) return undefined;
  const words: [number, number, number, number] = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) words[i] = (groups[i * 2] ?? 0) * 0x10000 + (groups[i * 2 + 1] ?? 0);
  if (tailV4 !== undefined) words[3] = tailV4;
  return words;
}

export function parseAddress(text: string): Address | undefined {
  if (text.includes(":")) {
    const words = parseIpv6(text);
    if (words === undefined) return undefined;
    // IPv4-mapped (::ffff:a.b.c.d) behaves as the IPv4 address.
    if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) return { v6: false, words: [0, 0, 0, words[3]] };
    return { v6: true, words };
  }
  const v4 = parseIpv4(text);
  return v4 === undefined ? undefined : { v6: false, words: [0, 0, 0, v4] };
}

/** Parses "10.20.0.0/16", "fd00::/8"; a bare address is a single-host range. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  const address = parseAddress(slash === -1 ? text : text.slice(0, slash));
  if (address === undefined) return undefined;
  const max = address.v6 ? 128 : 32;
  let prefix = max;
  if (slash !== -1) {
    const bits = text.slice(slash + 1);
    if (!/^(?:0|[1-9]\d{0,2})$/.test(bits)) return undefined;
    prefix = Number(bits);
    if (prefix > max) return undefined;
  }
  return { v6: address.v6, words: address.words, prefix: address.v6 ? prefix : prefix + 96 };
}

export function cidrProblem(text: string): string | undefined {
  return parseCidr(text) === undefined ? "expected an IPv4 or IPv6 range such as \"10.20.0.0/16\" or \"fd00::/8\"" : undefined;
}

function contains(cidr: Cidr, address: Address): boolean {
  if (cidr.v6 !== address.v6) return false;
  let remaining = cidr.prefix;
  for (let i = 0; i < 4 && remaining > 0; i++) {
    const bits = Math.min(32, remaining);
    // Compare the top `bits` bits of the word; ">>> 0" keeps the arithmetic unsigned.
    const shift = 32 - bits;
    if ((address.words[i] ?? 0) >>> shift !== (cidr.words[i] ?? 0) >>> shift) return false;
    remaining -= bits;
  }
  return true;
}

/** A fixed list of ranges; `has` answers false for anything that is not a valid address. */
export class CidrSet {
  readonly #ranges: readonly Cidr[];

  constructor(ranges: readonly string[]) {
    this.#ranges = ranges.map((text) => {
      const cidr = parseCidr(text);
      if (cidr === undefined) throw new RangeError(`invalid CIDR "${text}"`);
      return cidr;
    });
  }

  has(ip: string): boolean {
    const address = parseAddress(ip);
    if (address === undefined) return false;
    return this.#ranges.some((range) => contains(range, address));
  }
}

/** Ranges a CidrCache remembers; a policy names a handful, so more means ranges built from input. */
export const CIDR_CACHE_LIMIT = 1024;

/** `inCidr` for CEL: ranges are parsed once and remembered (bounded, per compiled policy). */
export class CidrCache {
  readonly #cache = new Map<string, Cidr>();
  readonly #limit: number;

  constructor(limit = CIDR_CACHE_LIMIT) {
    this.#limit = limit;
  }

  /** Ranges remembered now (never more than the limit; for tests and benches). */
  get size(): number {
    return this.#cache.size;
  }

  contains(ip: string, range: string): boolean {
    let cidr = this.#cache.get(range);
    if (cidr === undefined) {
      cidr = parseCidr(range);
      if (cidr === undefined) throw new RangeError(`inCidr: invalid CIDR "${range}"`);
      if (this.#cache.size < this.#limit) this.#cache.set(range, cidr);
    }
    const address = parseAddress(ip);
    return address !== undefined && contains(cidr, address);
  }
}
