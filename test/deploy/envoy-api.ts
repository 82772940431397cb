// Envoy's own API definitions (the .proto files @grpc/grpc-js-xds ships) and a strict decoder
// from Envoy YAML/JSON to real protobuf messages. protobufjs's Type.fromObject ignores unknown
// fields, so the decoder walks the JSON against the reflection types itself and refuses what
// Envoy would refuse: unknown fields, undefined enum names, unresolvable typed_config, malformed
// proto3 JSON forms (durations, wrappers), several members of one oneof, deprecated fields, and
// the protoc-gen-validate rules that matter for hand-written config (required, min_len, ranges).

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, isAbsolute, join } from "node:path";
import protobuf from "protobufjs";

const require = createRequire(import.meta.url);

/** Include directories: Envoy API, xDS, googleapis, protoc-gen-validate, and protobufjs's descriptor.proto. */
export const ENVOY_INCLUDE_DIRS: readonly string[] = (() => {
  const deps = join(dirname(require.resolve("@grpc/grpc-js-xds/package.json")), "deps");
  return [
    join(deps, "envoy-api"),
    join(deps, "xds"),
    join(deps, "googleapis"),
    join(deps, "protoc-gen-validate"),
    dirname(require.resolve("protobufjs/package.json")),
  ];
})();

/**
 * The bootstrap plus every extension whose type appears in a typed_config of envoy/*.yaml.
 * A typed_config naming a type not loaded here is an error, so adding an extension to the
 * YAML means adding its file here.
 */
export const ENVOY_API_FILES: readonly string[] = [
  "envoy/config/bootstrap/v3/bootstrap.proto",
  "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
  "envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto",
  "envoy/extensions/filters/http/router/v3/router.proto",
  "envoy/extensions/transport_sockets/tls/v3/tls.proto",
  "envoy/extensions/access_loggers/file/v3/file.proto",
  "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
];

export function loadEnvoyApi(files: readonly string[] = ENVOY_API_FILES): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => {
    if (isAbsolute(target)) return target;
    for (const dir of ENVOY_INCLUDE_DIRS) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return target;
  };
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

/** One problem found while decoding, with a JSON path like `static_resources.listeners[0].name`. */
export interface DecodeIssue {
  path: string;
  message: string;
}

export interface Decoded {
  /** The decoded message as a plain object (snake_case names, enums as names, Any unpacked). */
  value: Record<string, unknown>;
  issues: DecodeIssue[];
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const WRAPPERS: Readonly<Record<string, string>> = {
  ".google.protobuf.DoubleValue": "double",
  ".google.protobuf.FloatValue": "float",
  ".google.protobuf.Int64Value": "int64",
  ".google.protobuf.UInt64Value": "uint64",
  ".google.protobuf.Int32Value": "int32",
  ".google.protobuf.UInt32Value": "uint32",
  ".google.protobuf.BoolValue": "bool",
  ".google.protobuf.StringValue": "string",
  ".google.protobuf.BytesValue": "bytes",
};

const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const MAX_DURATION_SECONDS = 315_576_000_000;

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function lowerCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** protobufjs keeps custom options flattened under names like `(validate.rules).string.min_len`. */
function option(options: Record<string, unknown> | undefined, name: string): unknown {
  return options?.[name];
}

/**
 * Converts one JSON value of a message type into protobufjs's object form, collecting issues.
 * `Any` values are converted recursively and packed, so the result can go through
 * `Type.fromObject` and `encode` into real wire bytes.
 */
class StrictDecoder {
  readonly issues: DecodeIssue[] = [];

  constructor(private readonly root: protobuf.Root) {}

  private issue(path: string, message: string): void {
    this.issues.push({ path: path === "" ? "(root)" : path, message });
  }

  message(type: protobuf.Type, json: unknown, path: string): Record<string, unknown> | undefined {
    const special = this.wellKnown(type, json, path);
    if (special !== undefined) return special.value;
    if (!isObject(json)) {
      this.issue(path, `expected an object for ${type.fullName.slice(1)}, got ${describe(json)}`);
      return undefined;
    }
    const out: Record<string, unknown> = {};
    const seen = new Map<string, string>();
    for (const [key, value] of Object.entries(json)) {
      const fieldPath = path === "" ? key : `${path}.${key}`;
      const field = this.field(type, key);
      if (field === undefined) {
        this.issue(fieldPath, `unknown field "${key}" in ${type.fullName.slice(1)}`);
        continue;
      }
      const earlier = seen.get(field.name);
      if (earlier !== undefined) {
        this.issue(fieldPath, `field ${field.name} given twice (as "${earlier}" and "${key}")`);
        continue;
      }
      seen.set(field.name, key);
      if (option(field.options, "deprecated") === true) {
        this.issue(fieldPath, `field ${field.name} is deprecated in ${type.fullName.slice(1)}`);
      }
      if (value === null && field.resolvedType?.fullName !== ".google.protobuf.Value") continue;
      const converted = this.fieldValue(field, value, fieldPath);
      if (converted !== undefined) out[field.name] = converted;
    }
    this.checkOneofs(type, out, path);
    this.checkRequired(type, out, path);
    return out;
  }

  private field(type: protobuf.Type, key: string): protobuf.Field | undefined {
    const direct = type.fields[key];
    if (direct !== undefined) return direct;
    return type.fieldsArray.find((f) => {
      const jsonName = option(f.options, "json_name");
      return (typeof jsonName === "string" ? jsonName : lowerCamel(f.name)) === key;
    });
  }

  private checkOneofs(type: protobuf.Type, out: Record<string, unknown>, path: string): void {
    for (const oneof of type.oneofsArray) {
      const set = oneof.fieldsArray.filter((f) => out[f.name] !== undefined).map((f) => f.name);
      if (set.length > 1) this.issue(path, `oneof ${oneof.name} has several members set: ${set.join(", ")}`);
      if (set.length === 0 && option(oneof.options, "(validate.required)") === true) {
        this.issue(path, `oneof ${oneof.name} of ${type.fullName.slice(1)} requires one of: ${oneof.fieldsArray.map((f) => f.name).join(", ")}`);
      }
    }
  }

  private checkRequired(type: protobuf.Type, out: Record<string, unknown>, path: string): void {
    for (const field of type.fieldsArray) {
      // In a oneof, a member's rules apply only when that member is the one chosen.
      if (field.partOf !== null) continue;
      if (out[field.name] !== undefined) continue;
      const fieldPath = path === "" ? field.name : `${path}.${field.name}`;
      if (option(field.options, "(validate.rules).message.required") === true) {
        this.issue(fieldPath, `required field ${field.name} of ${type.fullName.slice(1)} is missing`);
        continue;
      }
      // An unset proto3 scalar is its zero value, and protoc-gen-validate checks that too:
      // an empty cluster name (min_len 1) or a zero port (gt 0) is refused by Envoy.
      if (field.repeated || field.map || field.resolvedType !== null) continue;
      if (field.type === "string") {
        const minLen = option(field.options, "(validate.rules).string.min_len");
        const ignoreEmpty = option(field.options, "(validate.rules).string.ignore_empty") === true;
        if (typeof minLen === "number" && minLen > 0 && !ignoreEmpty) {
          this.issue(fieldPath, `required field ${field.name} of ${type.fullName.slice(1)} is missing (min_len ${minLen})`);
        }
      } else if (field.type !== "bool" && field.type !== "bytes") {
        const gt = option(field.options, `(validate.rules).${field.type}.gt`);
        const gte = option(field.options, `(validate.rules).${field.type}.gte`);
        if ((typeof gt === "number" && !(0 > gt)) || (typeof gte === "number" && !(0 >= gte))) {
          this.issue(fieldPath, `required field ${field.name} of ${type.fullName.slice(1)} is missing (0 is out of range)`);
        }
      }
    }
  }

  private fieldValue(field: protobuf.Field, value: unknown, path: string): unknown {
    if (field.map) {
      if (!isObject(value)) {
        this.issue(path, `expected a map (object), got ${describe(value)}`);
        return undefined;
      }
      const keyType = field instanceof protobuf.MapField ? field.keyType : "string";
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (keyType !== "string") this.scalar(keyType, k, `${path}[${k}]`, undefined);
        out[k] = this.single(field, v, `${path}[${JSON.stringify(k)}]`);
      }
      return out;
    }
    if (field.repeated) {
      if (!Array.isArray(value)) {
        this.issue(path, `expected a list, got ${describe(value)}`);
        return undefined;
      }
      const minItems = option(field.options, "(validate.rules).repeated.min_items");
      if (typeof minItems === "number" && value.length < minItems) {
        this.issue(path, `needs at least ${minItems} item(s)`);
      }
      return value.map((item, i) => this.single(field, item, `${path}[${i}]`));
    }
    return this.single(field, value, path);
  }

  private single(field: protobuf.Field, value: unknown, path: string): unknown {
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Type) return this.message(resolved, value, path);
    if (resolved instanceof protobuf.Enum) return this.enumValue(resolved, value, path);
    return this.scalar(field.type, value, path, field);
  }

  private enumValue(enumType: protobuf.Enum, value: unknown, path: string): string | undefined {
    let name: string | undefined;
    if (typeof value === "string") name = Object.hasOwn(enumType.values, value) ? value : undefined;
    else if (typeof value === "number") name = enumType.valuesById[value];
    if (name === undefined) {
      this.issue(path, `${JSON.stringify(value)} is not a value of ${enumType.fullName.slice(1)} (${Object.keys(enumType.values).join(", ")})`);
      return undefined;
    }
    const valueOptions = enumType.valuesOptions?.[name];
    if (valueOptions?.deprecated === true) this.issue(path, `enum value ${name} of ${enumType.fullName.slice(1)} is deprecated`);
    return name;
  }

  private scalar(type: string, value: unknown, path: string, field: protobuf.Field | undefined): unknown {
    switch (type) {
      case "string": {
        if (typeof value !== "string") {
          this.issue(path, `expected a string, got ${describe(value)}`);
          return undefined;
        }
        const minLen = option(field?.options, "(validate.rules).string.min_len");
        if (typeof minLen === "number" && value.length < minLen) this.issue(path, `must be at least ${minLen} character(s)`);
        return value;
      }
      case "bool":
        if (typeof value !== "boolean") {
          this.issue(path, `expected true or false, got ${describe(value)}`);
          return undefined;
        }
        return value;
      case "bytes":
        if (typeof value !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) {
          this.issue(path, `expected base64 bytes, got ${describe(value)}`);
          return undefined;
        }
        return value;
      case "double": case "float": {
        const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
        if (typeof n !== "number" || Number.isNaN(n)) {
          this.issue(path, `expected a number, got ${describe(value)}`);
          return undefined;
        }
        return n;
      }
      default:
        return this.integer(type, value, path, field);
    }
  }

  private integer(type: string, value: unknown, path: string, field: protobuf.Field | undefined): unknown {
    const text = typeof value === "number" ? String(value) : typeof value === "string" ? value : "";
    if (!/^-?\d+$/.test(text)) {
      this.issue(path, `expected an integer (${type}), got ${describe(value)}`);
      return undefined;
    }
    const n = BigInt(text);
    const unsigned = type.startsWith("uint") || type.startsWith("fixed");
    const bits = type.endsWith("64") ? 64n : 32n;
    const min = unsigned ? 0n : -(1n << (bits - 1n));
    const max = unsigned ? (1n << bits) - 1n : (1n << (bits - 1n)) - 1n;
    if (n < min || n > max) {
      this.issue(path, `${text} is out of range for ${type}`);
      return undefined;
    }
    const rules = ["gt", "gte", "lt", "lte"] as const;
    for (const rule of rules) {
      const bound = option(field?.options, `(validate.rules).${type}.${rule}`);
      if (typeof bound !== "number") continue;
      const b = BigInt(bound);
      const ok = rule === "gt" ? n > b : rule === "gte" ? n >= b : rule === "lt" ? n < b : n <= b;
      if (!ok) this.issue(path, `${text} violates ${rule} ${bound}`);
    }
    return bits === 64n ? text : Number(text);
  }

  /** proto3 JSON forms of the well-known types; undefined when `type` is an ordinary message. */
  private wellKnown(type: protobuf.Type, json: unknown, path: string): { value: Record<string, unknown> | undefined } | undefined {
    const name = type.fullName;
    const wrapped = WRAPPERS[name];
    if (wrapped !== undefined) {
      const inner = this.scalar(wrapped, json, path, undefined);
      return { value: inner === undefined ? undefined : { value: inner } };
    }
    switch (name) {
      case ".google.protobuf.Any": return { value: this.any(json, path) };
      case ".google.protobuf.Duration": return { value: this.duration(json, path) };
      case ".google.protobuf.Timestamp": {
        if (typeof json !== "string" || !TIMESTAMP.test(json) || Number.isNaN(Date.parse(json))) {
          this.issue(path, `expected an RFC 3339 timestamp, got ${describe(json)}`);
          return { value: undefined };
        }
        const ms = Date.parse(json);
        return { value: { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 } };
      }
      case ".google.protobuf.Struct":
        if (!isObject(json)) {
          this.issue(path, `expected an object (Struct), got ${describe(json)}`);
          return { value: undefined };
        }
        return { value: toStruct(json) };
      case ".google.protobuf.Value": return { value: toValue(json as Json) };
      case ".google.protobuf.ListValue":
        if (!Array.isArray(json)) {
          this.issue(path, `expected a list (ListValue), got ${describe(json)}`);
          return { value: undefined };
        }
        return { value: { values: (json as Json[]).map(toValue) } };
      case ".google.protobuf.FieldMask":
        if (typeof json !== "string") {
          this.issue(path, `expected a comma-separated field mask string, got ${describe(json)}`);
          return { value: undefined };
        }
        return { value: { paths: json === "" ? [] : json.split(",") } };
      case ".google.protobuf.Empty":
        if (!isObject(json) || Object.keys(json).length > 0) this.issue(path, "expected {} (Empty)");
        return { value: {} };
      default:
        return undefined;
    }
  }

  private duration(json: unknown, path: string): Record<string, unknown> | undefined {
    const match = typeof json === "string" ? DURATION.exec(json) : null;
    if (match === null) {
      this.issue(path, `expected a duration like "0.05s", got ${describe(json)}`);
      return undefined;
    }
    const negative = match[1] === "-";
    const seconds = Number(match[2]);
    if (seconds > MAX_DURATION_SECONDS) {
      this.issue(path, `duration ${String(json)} is out of range`);
      return undefined;
    }
    const nanos = Number((match[3] ?? "").padEnd(9, "0"));
    return { seconds: String(negative ? -seconds : seconds), nanos: negative ? -nanos : nanos };
  }

  private any(json: unknown, path: string): Record<string, unknown> | undefined {
    if (!isObject(json)) {
      this.issue(path, `expected an Any object with "@type", got ${describe(json)}`);
      return undefined;
    }
    const typeUrl = json["@type"];
    if (typeof typeUrl !== "string" || !typeUrl.includes("/")) {
      this.issue(path, "Any needs \"@type\": \"type.googleapis.com/<full message name>\"");
      return undefined;
    }
    const typeName = typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
    let inner: protobuf.Type;
    try {
      inner = this.root.lookupType(typeName);
    } catch {
      this.issue(path, `"@type" ${typeUrl} names no loaded message type (add its .proto to ENVOY_API_FILES)`);
      return undefined;
    }
    const rest: Record<string, Json> = {};
    for (const [k, v] of Object.entries(json)) if (k !== "@type") rest[k] = v;
    const isSpecial = inner.fullName.startsWith(".google.protobuf.") && (WRAPPERS[inner.fullName] !== undefined
      || [".google.protobuf.Any", ".google.protobuf.Duration", ".google.protobuf.Timestamp", ".google.protobuf.Struct",
        ".google.protobuf.Value", ".google.protobuf.ListValue", ".google.protobuf.FieldMask"].includes(inner.fullName));
    let payload: unknown = rest;
    if (isSpecial) {
      const keys = Object.keys(rest);
      if (keys.length !== 1 || keys[0] !== "value") {
        this.issue(path, `Any of ${typeName} must carry its JSON in "value"`);
        return undefined;
      }
      payload = rest.value;
    }
    const before = this.issues.length;
    const object = this.message(inner, payload, path);
    if (object === undefined || this.issues.length > before) return undefined;
    const message = inner.fromObject(object);
    return { type_url: typeUrl, value: inner.encode(message).finish() };
  }
}

// google.protobuf.Value comes from protobufjs's bundled struct.proto (the "google/protobuf/"
// shortcut), whose field names are camelCase whatever keepCase says.
function toValue(json: Json): Record<string, unknown> {
  if (json === null) return { nullValue: "NULL_VALUE" };
  if (typeof json === "number") return { numberValue: json };
  if (typeof json === "string") return { stringValue: json };
  if (typeof json === "boolean") return { boolValue: json };
  if (Array.isArray(json)) return { listValue: { values: json.map(toValue) } };
  return { structValue: toStruct(json) };
}

function toStruct(json: Record<string, Json>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) fields[k] = toValue(v);
  return { fields };
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  return `${typeof value} ${JSON.stringify(value)}`;
}

const TO_OBJECT: protobuf.IConversionOptions = { enums: String, longs: String, bytes: String, defaults: false, arrays: false, objects: false, oneofs: false };

/**
 * Decodes `json` (parsed Envoy YAML) as message `typeName` strictly, then round-trips it through
 * the protobuf wire format, so that what the tests read is what Envoy would hold in memory.
 * Every `Any` in the result is unpacked in place (`{ "@type": url, ...fields }`), and wrappers and
 * Struct values read back as plain JSON, as they are written in YAML.
 */
export function decodeStrict(root: protobuf.Root, typeName: string, json: unknown): Decoded {
  const type = root.lookupType(typeName);
  const decoder = new StrictDecoder(root);
  const object = decoder.message(type, json, "");
  if (object === undefined || decoder.issues.length > 0) return { value: {}, issues: decoder.issues };
  const message = type.fromObject(object);
  const verifyError = type.verify(message);
  if (verifyError !== null) return { value: {}, issues: [{ path: "(root)", message: verifyError }] };
  const wire = type.encode(message).finish();
  const decoded = type.toObject(type.decode(wire), TO_OBJECT);
  return { value: unpackAnys(root, type, decoded) as Record<string, unknown>, issues: [] };
}

/** Replaces every Any in a toObject() result with its decoded content plus "@type". */
function unpackAnys(root: protobuf.Root, type: protobuf.Type, object: Record<string, unknown>): unknown {
  if (WRAPPERS[type.fullName] !== undefined) return object.value;
  if (type.fullName === ".google.protobuf.Struct") return fromStruct(object);
  if (type.fullName === ".google.protobuf.Value") return fromValue(object);
  if (type.fullName === ".google.protobuf.ListValue") return (object.values as Record<string, unknown>[] | undefined ?? []).map(fromValue);
  if (type.fullName === ".google.protobuf.Any") {
    const typeUrl = String(object.type_url);
    const inner = root.lookupType(typeUrl.slice(typeUrl.lastIndexOf("/") + 1));
    const bytes = Buffer.from(typeof object.value === "string" ? object.value : "", "base64");
    const innerObject = inner.toObject(inner.decode(bytes), TO_OBJECT);
    const unpacked = unpackAnys(root, inner, innerObject);
    return isObject(unpacked) ? { "@type": typeUrl, ...unpacked } : { "@type": typeUrl, value: unpacked };
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(object)) {
    const field = type.fields[key];
    const sub = field?.resolvedType;
    if (!(sub instanceof protobuf.Type)) {
      out[key] = value;
    } else if (field?.map === true && isObject(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unpackAnys(root, sub, v as Record<string, unknown>)]));
    } else if (Array.isArray(value)) {
      out[key] = value.map((v) => unpackAnys(root, sub, v as Record<string, unknown>));
    } else {
      out[key] = unpackAnys(root, sub, value as Record<string, unknown>);
    }
  }
  return out;
}

function fromValue(value: Record<string, unknown>): unknown {
  if (value.structValue !== undefined) return fromStruct(value.structValue as Record<string, unknown>);
  if (value.listValue !== undefined) {
    return ((value.listValue as { values?: Record<string, unknown>[] }).values ?? []).map(fromValue);
  }
  if (value.nullValue !== undefined) return null;
  return value.stringValue ?? value.numberValue ?? value.boolValue ?? null;
}

function fromStruct(struct: Record<string, unknown>): Record<string, unknown> {
  const fields = (struct.fields ?? {}) as Record<string, Record<string, unknown>>;
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, fromValue(v)]));
}

/** Milliseconds of a decoded google.protobuf.Duration ({seconds: "0", nanos: 50000000}). */
export function durationMs(duration: unknown): number {
  if (!isObject(duration)) return 0;
  const seconds = Number(duration.seconds ?? 0);
  const nanos = Number(duration.nanos ?? 0);
  return seconds * 1000 + nanos / 1e6;
}
