// Entities that are not workloads (--entities FILE): AuthZEN subjects are often users, resources
// often records with owners. One YAML (or JSON) document, kind Entities:
//
//   apiVersion: vigil.dev/v1alpha1
//   kind: Entities
//   spec:
//     subjects:                       # keyed by every id they are known by (whatever the type)
//       - ids: [CiRmZDA2MTRk…, rick@the-citadel.com]
//         roles: [admin, evil_genius]
//         attributes: { email: rick@the-citadel.com, name: Rick Sanchez }
//     resources:                      # keyed by type and id
//       - type: todo
//         ids: [todo-1]
//         attributes: { ownerID: morty@the-citadel.com }
//
// Policies see them as subject.roles / subject.attributes / resource.attributes next to the
// request's own subject.properties (cel.ts). Loaded like policies: validated with errors naming the
// path, swapped atomically on change, a broken change keeps the last good data and says so.

import { readFile, stat } from "node:fs/promises";
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import { parse as parseYaml } from "yaml";
import * as z from "zod";
import { VigilError } from "../errors/index.js";
import { POLICY_API_VERSION } from "./schema.js";
import { formatPath } from "./diagnostics.js";
import { withOneByteStrings } from "../util/one-byte.js";

export const ENTITIES_KIND = "Entities";
/** Largest entities file read, in bytes: the whole file is held in memory. */
export const MAX_ENTITIES_FILE_BYTES = 16 * 1024 * 1024;

/** Keys a JavaScript object must not be given from data: they reach the prototype chain. */
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

const id = z.string().min(1, { error: "must not be empty" }).max(1024);

/** Attribute values: JSON values, nested at most a few levels, never a prototype key. */
const attributes = z.record(z.string().min(1).max(256), z.unknown()).superRefine((value, ctx) => {
  const problem = valueProblem(value, 0);
  if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
}).default({});

const subjectSchema = z.strictObject({
  /** Informative: AuthZEN PEPs name the same user "user" in one scenario and "identity" in another. */
  type: z.string().min(1).max(256).optional(),
  ids: z.array(id).min(1, { error: "must list at least one id" }),
  roles: z.array(z.string().min(1).max(256)).default([]),
  attributes,
});

const resourceSchema = z.strictObject({
  type: z.string().min(1).max(256),
  ids: z.array(id).min(1, { error: "must list at least one id" }),
  attributes,
});

export const entitiesManifestSchema = z.strictObject({
  apiVersion: z.literal(POLICY_API_VERSION),
  kind: z.literal(ENTITIES_KIND),
  metadata: z.strictObject({ name: z.string().max(253).optional() }).optional(),
  spec: z.strictObject({
    subjects: z.array(subjectSchema).default([]),
    resources: z.array(resourceSchema).default([]),
  }),
});

/** What the entities file says about one subject or resource. */
export interface EntityEntry {
  roles: readonly string[];
  attributes: Readonly<Record<string, unknown>>;
}

/** The loaded entities: O(1) lookups by id (subjects) or type and id (resources). */
export class EntityBook {
  readonly #subjects: ReadonlyMap<string, EntityEntry>;
  readonly #resources: ReadonlyMap<string, EntityEntry>;

  constructor(subjects: ReadonlyMap<string, EntityEntry> = new Map(), resources: ReadonlyMap<string, EntityEntry> = new Map()) {
    this.#subjects = subjects;
    this.#resources = resources;
  }

  get size(): { subjects: number; resources: number } {
    return { subjects: this.#subjects.size, resources: this.#resources.size };
  }

  // Asked on every Check: an empty map is not asked at all, since a lookup hashes the key (the
  // route is a fresh string per request, and a resource's key is built by concatenation).
  subject(subjectId: string): EntityEntry | undefined {
    return subjectId === "" || this.#subjects.size === 0 ? undefined : this.#subjects.get(subjectId);
  }

  resource(type: string, resourceId: string): EntityEntry | undefined {
    return resourceId === "" || this.#resources.size === 0 ? undefined : this.#resources.get(resourceKey(type, resourceId));
  }
}

/** An empty book: no --entities file. */
export const NO_ENTITIES = new EntityBook();

function resourceKey(type: string, resourceId: string): string {
  return `${type}\u0000${resourceId}`;
}

/** Parses the text of an entities file; throws VigilError("invalid_input") listing every problem. */
export function parseEntities(text: string, file: string): EntityBook {
  let raw: unknown;
  try {
    raw = withOneByteStrings(parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 }));
  } catch (error) {
    throw new VigilError("invalid_input", `${file}: YAML: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parsed = entitiesManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 50).map((issue) => `${file}: ${formatPath(issue.path)}: ${issue.message}`);
    throw new VigilError("invalid_input", `entities file refused:\n${lines.join("\n")}`);
  }
  const problems: string[] = [];
  const subjects = new Map<string, EntityEntry>();
  parsed.data.spec.subjects.forEach((subject, index) => {
    const entry: EntityEntry = Object.freeze({ roles: Object.freeze([...subject.roles]), attributes: Object.freeze(subject.attributes) });
    for (const subjectId of subject.ids) {
      if (subjects.has(subjectId)) problems.push(`${file}: spec.subjects[${index}]: id "${subjectId}" is given to two subjects`);
      subjects.set(subjectId, entry);
    }
  });
  const resources = new Map<string, EntityEntry>();
  parsed.data.spec.resources.forEach((resource, index) => {
    const entry: EntityEntry = Object.freeze({ roles: Object.freeze([]), attributes: Object.freeze(resource.attributes) });
    for (const resourceId of resource.ids) {
      const key = resourceKey(resource.type, resourceId);
      if (resources.has(key)) problems.push(`${file}: spec.resources[${index}]: ${resource.type} "${resourceId}" is given twice`);
      resources.set(key, entry);
    }
  });
  if (problems.length > 0) throw new VigilError("invalid_input", `entities file refused:\n${problems.slice(0, 50).join("\n")}`);
  return new EntityBook(subjects, resources);
}

export async function loadEntitiesFile(file: string): Promise<EntityBook> {
  let text: string;
  try {
    const info = await stat(file);
    if (info.size > MAX_ENTITIES_FILE_BYTES) throw new VigilError("invalid_input", `${file}: larger than ${MAX_ENTITIES_FILE_BYTES} bytes`);
    text = await readFile(file, "utf8");
  } catch (error) {
    if (error instanceof VigilError) throw error;
    throw new VigilError("invalid_input", `${file}: cannot read the entities file (${(error as NodeJS.ErrnoException).code ?? "error"})`, { cause: error });
  }
  return parseEntities(text, file);
}

export interface EntitiesWatch {
  /** The active entities; read it on each decision rather than keeping it. */
  current(): EntityBook;
  /** Re-reads now; a refused file keeps the last good entities (onError says why). */
  reload(): Promise<void>;
  close(): void;
}

export interface EntitiesWatchOptions {
  onLoad?: (book: EntityBook, initial: boolean) => void;
  onError?: (error: VigilError) => void;
  debounceMs?: number;
}

/**
 * Loads `file` (throwing if that fails) and reloads it when its directory changes: watching the
 * directory catches an editor's rename and a Kubernetes ConfigMap's "..data" symlink swap.
 */
export async function watchEntitiesFile(file: string, options: EntitiesWatchOptions = {}): Promise<EntitiesWatch> {
  let active = await loadEntitiesFile(file);
  options.onLoad?.(active, true);
  const state = { closed: false };
  // A function, not the flag: the flag changes across the awaits below.
  const isClosed = (): boolean => state.closed;
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();
  const reload = (): Promise<void> => {
    chain = chain.then(async () => {
      if (isClosed()) return;
      try {
        const loaded = await loadEntitiesFile(file);
        if (isClosed()) return;
        active = loaded;
        options.onLoad?.(active, false);
      } catch (error) {
        if (!isClosed()) options.onError?.(VigilError.from(error));
      }
    });
    return chain;
  };
  const name = basename(file);
  let watcher: FSWatcher;
  try {
    watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      // Other files of a shared directory do not reload us; a ConfigMap swap renames "..data".
      if (changed !== null && changed !== name && !changed.startsWith("..")) return;
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(() => { timer = undefined; void reload(); }, options.debounceMs ?? 200);
      timer.unref();
    });
    watcher.on("error", (error) => { options.onError?.(VigilError.from(error, "unavailable")); });
  } catch (error) {
    throw VigilError.from(error, "unavailable");
  }
  return {
    current: () => active,
    reload,
    close: () => {
      state.closed = true;
      if (timer !== undefined) clearTimeout(timer);
      watcher.close();
    },
  };
}

const MAX_VALUE_DEPTH = 8;

/** Why an attribute value cannot be handed to CEL, or undefined. */
function valueProblem(value: unknown, depth: number): string | undefined {
  if (depth > MAX_VALUE_DEPTH) return `attributes nest deeper than ${MAX_VALUE_DEPTH} levels`;
  if (value === null || typeof value === "string" || typeof value === "boolean") return undefined;
  if (typeof value === "number") return Number.isFinite(value) ? undefined : "attribute numbers must be finite";
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = valueProblem(item, depth + 1);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  if (typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      if (FORBIDDEN_KEYS.has(key)) return `attribute key "${key}" is not allowed`;
      const problem = valueProblem(item, depth + 1);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  return "attribute values must be JSON values (string, number, boolean, null, list, map)";
}
