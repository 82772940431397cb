// The entities phase: who acts on what (`subject`, `action`, `resource` in CEL). For an AuthZEN
// evaluation they are what the PEP asked about; for an Envoy Check the caller's workload, the
// HTTP or JSON-RPC method and the route. Either way the entities file (--entities) adds what it
// knows of the subject (by any of its ids) and of the resource (by type and id): roles and
// attributes, next to the request's own properties. Map lookups only.

import type { ActionView, EntityView, Evaluation, RequestView } from "../model/index.js";
import type { EntityBook, EntityEntry } from "../policy/entities.js";

/** The resource type an Envoy Check is about: its route, named by the path without query. */
export const ROUTE_RESOURCE = "route";
/** The subject type of an Envoy Check's caller with a SPIFFE ID. */
export const WORKLOAD_SUBJECT = "workload";

export interface Entities {
  subject: EntityView;
  action: ActionView;
  resource: EntityView;
}

const NOTHING: Record<string, unknown> = Object.freeze({});
const NO_ROLES: string[] = Object.freeze([]) as unknown as string[];

function entity(type: string, id: string, properties: Record<string, unknown>, entry: EntityEntry | undefined): EntityView {
  return {
    type, id, properties,
    known: entry !== undefined,
    roles: (entry?.roles ?? NO_ROLES) as string[],
    attributes: entry?.attributes ?? NOTHING,
  };
}

/**
 * What a policy whose conditions never read subject, action or resource (CompiledPolicy.readsEntities
 * false) is given instead: placeholders made once, so a Check builds no entity views for nothing.
 */
export const UNREAD_ENTITIES: Entities = Object.freeze({
  subject: Object.freeze(entity("", "", NOTHING, undefined)),
  action: Object.freeze({ name: "", properties: NOTHING }),
  resource: Object.freeze(entity("", "", NOTHING, undefined)),
});

/** What an AuthZEN evaluation asks about, with what the entities file knows of it. */
export function evaluationEntities(evaluation: Evaluation, book: EntityBook): Entities {
  const { subject, action, resource } = evaluation;
  return {
    subject: entity(subject.type, subject.id, subject.properties, book.subject(subject.id)),
    action: { name: action.name, properties: action.properties },
    resource: entity(resource.type, resource.id, resource.properties, book.resource(resource.type, resource.id)),
  };
}

/** An Envoy Check as subject, action and resource: the caller, the (JSON-RPC) method, the route. */
export function checkEntities(spiffeId: string, view: RequestView, book: EntityBook): Entities {
  const mcp = view.mcp;
  return {
    subject: entity(spiffeId === "" ? "" : WORKLOAD_SUBJECT, spiffeId, NOTHING, book.subject(spiffeId)),
    action: mcp.method === ""
      ? { name: view.method, properties: NOTHING }
      : { name: mcp.method, properties: mcp.method === "tools/call" ? { tool: mcp.tool, arguments: mcp.arguments } : NOTHING },
    resource: entity(ROUTE_RESOURCE, view.path_only, NOTHING, book.resource(ROUTE_RESOURCE, view.path_only)),
  };
}
